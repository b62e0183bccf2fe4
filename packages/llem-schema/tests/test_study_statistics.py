"""Statistics across cycles, checked against numpy and an exact bootstrap reference."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llem_schema import MetricStatistics, cycle_statistics
from llem_schema.metrics import percentile


def exact_bootstrap_means(values: list[float]) -> list[float]:
    """The exact bootstrap distribution of the mean: all n**n equally likely resamples.

    Every ordered resample (index tuple) has probability n**-n, so the sorted list of all their
    means is the distribution the Monte Carlo bootstrap samples from.
    """
    n = len(values)
    return sorted(
        math.fsum(values[i] for i in indices) / n
        for indices in itertools.product(range(n), repeat=n)
    )


CASES = [
    [102.4, 98.1, 110.7, 95.3],
    [1.0, 2.3, 3.1, 4.7, 9.2],
    [0.0213, 0.0198, 0.0251, 0.0207, 0.0233],
    [5.0, 5.0, 5.0, 7.5],  # ties: a distribution with heavy atoms
]


@pytest.mark.parametrize("values", CASES)
@pytest.mark.parametrize("seed", [0, 1, 20261122])
def test_monte_carlo_interval_matches_the_exact_bootstrap(values: list[float], seed: int) -> None:
    """Each bound lies between the exact distribution's percentiles half a point either side.

    With 20,000 resamples the standard error of an estimated 2.5th percentile is about 0.11
    percentile points, so +-0.5 points is over 4 standard errors; the bounds use the same
    percentile definition (linear interpolation) on both sides.
    """
    exact = exact_bootstrap_means(values)
    stats = cycle_statistics(values, seed=seed, resamples=20_000)
    assert stats.ci_low is not None
    assert stats.ci_high is not None
    assert percentile(exact, 2.0) <= stats.ci_low <= percentile(exact, 3.0)
    assert percentile(exact, 97.0) <= stats.ci_high <= percentile(exact, 98.0)
    # and most often exactly the exact interval's bounds (the distribution is discrete)
    spread = max(values) - min(values)
    assert stats.ci_low == pytest.approx(percentile(exact, 2.5), abs=0.05 * spread)
    assert stats.ci_high == pytest.approx(percentile(exact, 97.5), abs=0.05 * spread)


def test_other_confidence_levels_match_the_exact_bootstrap_too() -> None:
    values = [1.0, 2.3, 3.1, 4.7, 9.2]
    exact = exact_bootstrap_means(values)
    stats = cycle_statistics(values, seed=7, resamples=50_000, confidence=0.80)
    assert stats.confidence == 0.80
    assert stats.ci_low is not None
    assert stats.ci_high is not None
    assert percentile(exact, 9.5) <= stats.ci_low <= percentile(exact, 10.5)
    assert percentile(exact, 89.5) <= stats.ci_high <= percentile(exact, 90.5)


@pytest.mark.parametrize(
    "values", [[3.0, 4.0], [102.4, 98.1, 110.7, 95.3], [1e-3, 2e-3, 1.5e-3, 1.1e-3, 9e-4, 1e-3]]
)
def test_mean_std_and_cv_match_numpy(values: list[float]) -> None:
    stats = cycle_statistics(values, seed=1, resamples=100)
    assert stats.n == len(values)
    assert stats.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert stats.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert stats.cv == pytest.approx(np.std(values, ddof=1) / np.mean(values), rel=1e-12)
    assert stats.values == values
    assert stats.confidence == 0.95


def test_the_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    values = [1.0, 2.3, 3.1, 4.7, 9.2, 0.4, 7.7, 5.1, 6.6, 3.9]
    assert cycle_statistics(values, seed=3) == cycle_statistics(values, seed=3)
    assert cycle_statistics(values, seed=3).ci_low != cycle_statistics(values, seed=4).ci_low


def test_a_single_value_has_no_spread() -> None:
    stats = cycle_statistics([42.0], seed=0)
    assert (stats.n, stats.mean) == (1, 42.0)
    assert (stats.std, stats.cv, stats.ci_low, stats.ci_high) == (None, None, None, None)


def test_a_zero_mean_has_no_cv_and_equal_values_no_spread() -> None:
    assert cycle_statistics([-1.0, 1.0], seed=0).cv is None
    equal = cycle_statistics([2.5, 2.5, 2.5], seed=0)
    assert (equal.std, equal.cv, equal.ci_low, equal.ci_high) == (0.0, 0.0, 2.5, 2.5)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([], {}, "of no values"),
        ([1.0, math.nan], {}, "finite"),
        ([1.0, math.inf], {}, "finite"),
        ([1.0, 2.0], {"resamples": 0}, "resamples must be at least 1"),
        ([1.0, 2.0], {"confidence": 1.0}, "confidence must lie strictly between 0 and 1"),
    ],
)
def test_bad_input_is_refused(values: list[float], kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cycle_statistics(values, seed=0, **kwargs)  # type: ignore[arg-type]


def test_inconsistent_statistics_do_not_validate() -> None:
    good = cycle_statistics([1.0, 2.0, 3.0], seed=0).model_dump()
    with pytest.raises(ValidationError, match="n must equal the number of values"):
        MetricStatistics.model_validate(good | {"n": 4})
    with pytest.raises(ValidationError, match="mean must be the mean of values"):
        MetricStatistics.model_validate(good | {"mean": 2.5})
    with pytest.raises(ValidationError, match="set exactly when n >= 2"):
        MetricStatistics.model_validate(good | {"ci_low": None})
    with pytest.raises(ValidationError, match="ci_low must not exceed ci_high"):
        MetricStatistics.model_validate(good | {"ci_low": 3.0, "ci_high": 1.0})


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=2, max_size=8
    ),
    seed=st.integers(min_value=0, max_value=2**63),
)
def test_the_interval_lies_within_the_values_and_the_document_round_trips(
    values: list[float], seed: int
) -> None:
    stats = cycle_statistics(values, seed=seed, resamples=500)
    assert stats.ci_low is not None
    assert stats.ci_high is not None
    slack = 1e-9 * max(1.0, *map(abs, values))
    assert min(values) - slack <= stats.ci_low <= stats.ci_high <= max(values) + slack
    assert MetricStatistics.model_validate_json(stats.model_dump_json()) == stats

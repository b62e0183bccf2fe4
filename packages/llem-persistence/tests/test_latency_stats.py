"""Late aggregation's latency path (numpy arrays, sorted and summed with numpy) gives the
numbers of llem_schema's definition, and numpy's own percentiles."""

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llem_persistence import aggregate_results
from llem_persistence.aggregation import latency_metrics, latency_stats
from llem_schema import LatencyMetrics, LatencyStats, RequestRecord
from llem_schema.testing import example_config, example_raw_result, example_requests

EXACT = ("count", "median_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")
REL = 1e-12

latencies = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=300
)


def assert_same(fast: LatencyStats | None, reference: LatencyStats | None) -> None:
    """The same order statistics, bit for bit (one percentile function on the same sorted
    numbers); the mean equal to rounding (numpy's pairwise sum against ``math.fsum``)."""
    if reference is None:
        assert fast is None
        return
    assert fast is not None
    for name in EXACT:
        assert getattr(fast, name) == getattr(reference, name), name
        assert type(getattr(fast, name)) is type(getattr(reference, name)), name
    scale = max(1.0, reference.max_ms)
    assert type(fast.mean_ms) is float
    assert math.isclose(fast.mean_ms, reference.mean_ms, rel_tol=REL, abs_tol=REL * scale)


def assert_numpy(fast: LatencyStats | None, values: npt.NDArray[np.float64]) -> None:
    assert fast is not None
    assert fast.count == values.size
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99], method="linear")
    expected = {
        "mean_ms": values.mean(),
        "median_ms": p50,
        "p90_ms": p90,
        "p95_ms": p95,
        "p99_ms": p99,
        "min_ms": values.min(),
        "max_ms": values.max(),
    }
    scale = max(1.0, float(values.max()))
    for name, want in expected.items():
        got = getattr(fast, name)
        assert math.isclose(got, float(want), rel_tol=REL, abs_tol=REL * scale), (name, got, want)


@given(latencies)
def test_array_stats_equal_the_schema_definition_and_numpy(values: list[float]) -> None:
    fast = latency_stats(np.array(values))
    assert_same(fast, LatencyStats.from_values(values))
    assert_numpy(fast, np.array(values))


@pytest.mark.parametrize("seed", range(40))
def test_array_stats_on_many_random_sizes_and_shapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.choice([1, 2, 3, 4, 5, 10, 99, 100, 101, 1000, 12_345, 100_001]))
    shape = seed % 4
    if shape == 0:
        values = rng.uniform(0.0, 50.0, size)
    elif shape == 1:  # heavy tail, as latencies have
        values = rng.lognormal(3.0, 1.5, size)
    elif shape == 2:  # many ties
        values = rng.integers(0, 5, size).astype(np.float64)
    else:  # tiny and huge together
        values = rng.choice([0.0, 1e-9, 3.5, 1e6], size)
    fast = latency_stats(values)
    assert_same(fast, LatencyStats.from_values(values.tolist()))
    assert_numpy(fast, values)


def test_array_stats_by_hand_and_of_nothing() -> None:
    values = np.array([40.0, 10.0, 30.0, 20.0])
    stats = latency_stats(values)
    assert stats is not None
    assert (stats.count, stats.mean_ms, stats.median_ms) == (4, 25.0, 25.0)
    assert stats.p90_ms == pytest.approx(37.0)
    assert stats.p99_ms == pytest.approx(39.7)
    assert (stats.min_ms, stats.max_ms) == (10.0, 40.0)
    assert values.tolist() == [40.0, 10.0, 30.0, 20.0]  # the caller's array is left as it was
    assert latency_stats(np.array([], dtype=np.float64)) is None


def zero_one_token_and_failed_requests() -> list[RequestRecord]:
    return [
        RequestRecord(
            request_index=0,
            batch_index=0,
            input_tokens=5,
            output_tokens=0,
            ttft_ms=None,
            e2e_ms=None,
            itl_ms=[],
        ),
        RequestRecord(
            request_index=1,
            batch_index=0,
            input_tokens=5,
            output_tokens=1,
            ttft_ms=12.5,
            e2e_ms=12.5,
            itl_ms=[],
        ),
        RequestRecord(  # failed part-way: its partial latencies are not latencies
            request_index=2,
            batch_index=0,
            input_tokens=5,
            output_tokens=3,
            ttft_ms=9_000.0,
            e2e_ms=9_900.0,
            itl_ms=[400.0, 500.0],
            error="connection reset",
        ),
    ]


@pytest.mark.parametrize("seed", range(10))
def test_array_metrics_equal_the_schema_metrics(seed: int) -> None:
    requests = [
        *example_requests(50 + 37 * seed, seed=seed),
        *zero_one_token_and_failed_requests(),
    ]
    fast = latency_metrics(requests)
    reference = LatencyMetrics.from_requests(requests)
    for name in ("ttft", "itl", "tpot", "e2e"):
        assert_same(getattr(fast, name), getattr(reference, name))
    assert fast.e2e is not None
    assert fast.e2e.max_ms < 9_000.0  # the failed one left out


def test_array_metrics_of_requests_without_tokens_or_completion_are_none() -> None:
    none = LatencyMetrics(ttft=None, itl=None, tpot=None, e2e=None)
    zero, _, failed = zero_one_token_and_failed_requests()
    assert latency_metrics([zero, failed]) == none
    assert latency_metrics([]) == none


def test_aggregation_latency_equals_the_schema_definition_on_the_concatenation() -> None:
    config = example_config()
    raws = [
        example_raw_result(process_index=i, num_processes=3, n_requests=40, seed=i)
        for i in range(3)
    ]
    result = aggregate_results(raws, effective_config=config.model_dump(mode="json"))
    reference = LatencyMetrics.from_requests(r for raw in raws for r in raw.requests)
    for name in ("ttft", "itl", "tpot", "e2e"):
        assert_same(getattr(result.latency, name), getattr(reference, name))

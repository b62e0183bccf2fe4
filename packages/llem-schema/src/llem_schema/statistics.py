"""Statistics of one metric across a study's cycles, in pure Python.

:func:`cycle_statistics` gives the mean, the sample standard deviation, the coefficient of
variation and a percentile-bootstrap confidence interval of the mean. The bootstrap draws its
resamples from :meth:`random.Random.random` alone, whose sequence Python guarantees for a given
seed, so the same values and seed give the same interval on every Python version.
"""

import functools
import math
import random
from collections.abc import Sequence
from typing import Final, Self

from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator

from llem_schema._base import FrozenModel
from llem_schema.metrics import percentile

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_RESAMPLES", "MetricStatistics", "cycle_statistics"]

DEFAULT_RESAMPLES: Final = 10_000
DEFAULT_CONFIDENCE: Final = 0.95
_REL_TOL: Final = 1e-9


class MetricStatistics(FrozenModel):
    """One metric across cycles. Values, mean, std and interval are in the metric's own unit
    (its name says which: ``_j``, ``_ms``, ``_s``, ``_per_j``)."""

    n: PositiveInt = Field(description="Number of values (completed cycles with this metric).")
    mean: float = Field(description="Arithmetic mean, in the metric's unit.")
    std: NonNegativeFloat | None = Field(
        description="Sample standard deviation (n - 1 denominator), metric's unit; None if n < 2."
    )
    cv: NonNegativeFloat | None = Field(
        description=(
            "Coefficient of variation, std / |mean|, as a fraction (0.05 = 5%); None if n < 2 "
            "or the mean is 0."
        )
    )
    ci_low: float | None = Field(
        description="Lower bound of the percentile-bootstrap interval of the mean; None if n < 2."
    )
    ci_high: float | None = Field(
        description="Upper bound of the percentile-bootstrap interval of the mean; None if n < 2."
    )
    confidence: float = Field(
        default=DEFAULT_CONFIDENCE,
        gt=0.0,
        lt=1.0,
        description="Confidence level of [ci_low, ci_high], as a fraction (0.95 = 95%).",
    )
    values: list[float] = Field(description="The value of each cycle, in run order.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.values) != self.n:
            raise ValueError("n must equal the number of values")
        if not math.isclose(self.mean, _mean(self.values), rel_tol=_REL_TOL, abs_tol=1e-12):
            raise ValueError("mean must be the mean of values")
        spread = (self.std, self.ci_low, self.ci_high)
        if (self.n < 2) != all(v is None for v in spread) or (self.n >= 2 and None in spread):
            raise ValueError("std, ci_low and ci_high are set exactly when n >= 2")
        if self.cv is not None and self.std is None:
            raise ValueError("cv needs std")
        if self.ci_low is not None and self.ci_high is not None and self.ci_low > self.ci_high:
            raise ValueError("ci_low must not exceed ci_high")
        return self


def cycle_statistics(
    values: Sequence[float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> MetricStatistics:
    """Mean, sample std, CV and the bootstrap interval of the mean of ``values``.

    The interval is the percentile bootstrap: ``resamples`` times, draw ``len(values)`` values
    with replacement and take their mean; the bounds are the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` percentiles of those means (linear interpolation, as
    :func:`~llem_schema.metrics.percentile`). Deterministic for a given ``seed``.
    """
    data = [float(v) for v in values]
    if not data:
        raise ValueError("cycle statistics of no values")
    if not all(math.isfinite(v) for v in data):
        raise ValueError("cycle statistics need finite values")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    n = len(data)
    mean = _mean(data)
    if n < 2:
        return MetricStatistics(
            n=n,
            mean=mean,
            std=None,
            cv=None,
            ci_low=None,
            ci_high=None,
            confidence=confidence,
            values=data,
        )
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1))
    means = sorted(bootstrap_means(data, seed=seed, resamples=resamples))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = min(data), max(data)  # every resample mean lies within; clamp off rounding
    return MetricStatistics(
        n=n,
        mean=mean,
        std=std,
        cv=std / abs(mean) if mean != 0.0 else None,
        ci_low=min(max(percentile(means, tail), low), high),
        ci_high=min(max(percentile(means, 100.0 - tail), low), high),
        confidence=confidence,
        values=data,
    )


def bootstrap_means(values: Sequence[float], *, seed: int, resamples: int) -> list[float]:
    """The means of ``resamples`` resamples (with replacement) of ``values``, in draw order.

    Resample ``k`` takes ``values[floor(u * n)]`` for the ``n`` uniforms ``u`` drawn
    ``k * n`` to ``(k + 1) * n - 1`` from ``random.Random(seed).random``.
    """
    n = len(values)
    picked = [values[i] for i in _resample_indices(seed, n, resamples)]
    return [math.fsum(picked[k : k + n]) / n for k in range(0, n * resamples, n)]


@functools.lru_cache(maxsize=8)
def _resample_indices(seed: int, n: int, resamples: int) -> tuple[int, ...]:
    # Cached: the metrics of one study point share a seed, and so their resamples.
    draw = random.Random(seed).random
    return tuple(int(draw() * n) for _ in range(n * resamples))


def _mean(values: Sequence[float]) -> float:
    # Clamped: equal values have exactly their value as mean (and so a std of exactly 0).
    return min(max(math.fsum(values) / len(values), min(values)), max(values))

"""Latency statistics of many values with ``pyarrow.compute``, for late aggregation.

The definitions are llem_schema's (:mod:`llem_schema.metrics`): the same figures as
:meth:`~llem_schema.LatencyStats.from_values` (count, mean, min, max, and percentiles with
linear interpolation, numpy's default), computed over Arrow arrays in C++ instead of sorted
Python lists. Results agree with the pure-Python definition to floating-point rounding (the
mean is a pairwise sum rather than ``math.fsum``; the interpolation rounds differently in the
last bits); ``tests/test_fast_stats.py`` holds them to it.
"""

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from llem_schema import LatencyMetrics, LatencyStats, RequestRecord

__all__ = ["latency_metrics", "latency_stats"]

_QUANTILES: Final = pc.QuantileOptions(q=[0.5, 0.9, 0.95, 0.99], interpolation="linear")


def latency_stats(
    values_ms: "pa.Array[pa.DoubleScalar] | pa.ChunkedArray[pa.DoubleScalar]",
) -> LatencyStats | None:
    """:meth:`LatencyStats.from_values` of a float64 array without nulls; ``None`` if empty."""
    if len(values_ms) == 0:
        return None
    if values_ms.null_count:
        raise ValueError("latency values must not contain nulls")
    median, p90, p95, p99 = map(_number, pc.quantile(values_ms, options=_QUANTILES).to_pylist())
    extremes = pc.min_max(values_ms)
    return LatencyStats(
        count=len(values_ms),
        mean_ms=_number(pc.mean(values_ms).as_py()),
        median_ms=median,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        min_ms=_number(extremes["min"].as_py()),
        max_ms=_number(extremes["max"].as_py()),
    )


def _number(value: object) -> float:
    # Aggregates of a non-empty array without nulls are never null.
    if not isinstance(value, float):
        raise TypeError(f"expected a float statistic, got {value!r}")
    return value


def _array(values: Iterable[float], size: int) -> "pa.Array[pa.DoubleScalar]":
    # pyarrow reads the iterator straight into one buffer: no intermediate Python list.
    return pa.array(values, type=pa.float64(), size=size)


def latency_metrics(requests: Sequence[RequestRecord]) -> LatencyMetrics:
    """:meth:`LatencyMetrics.from_requests` of ``requests`` (all processes concatenated)."""
    requests = [r for r in requests if r.error is None]  # failed ones: not a latency
    ttft = [r.ttft_ms for r in requests if r.ttft_ms is not None]
    e2e = [r.e2e_ms for r in requests if r.e2e_ms is not None]
    tpot = [t for r in requests if (t := r.tpot_ms) is not None]
    gaps = sum(len(r.itl_ms) for r in requests)
    itl = _array(chain.from_iterable(r.itl_ms for r in requests), gaps)
    return LatencyMetrics(
        ttft=latency_stats(_array(ttft, len(ttft))),
        itl=latency_stats(itl),
        tpot=latency_stats(_array(tpot, len(tpot))),
        e2e=latency_stats(_array(e2e, len(e2e))),
    )

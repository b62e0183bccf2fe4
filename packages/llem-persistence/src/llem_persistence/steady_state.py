"""The steady-state window of a run under load, and its figures.

A server reaches its steady state only once its queue has filled. Requests in flight over time
are a step function of the requests' start and end times; the window runs from the first time
they reach the target concurrency to the last time they are at or above it, so the ramp-up
before and the drain after are left out (the definition of ML.ENERGY's benchmark). Under an
arrival rate the target is the median level (weighted by time) while requests arrive, at most
``load.max_concurrency``; with every request sent at once, ``load.max_concurrency``. A load
that sends everything at once with no bound (an offline engine's static batches) has no
steady state: its in-flight count only drains.

Within the window: the output tokens whose arrival falls in it, and the GPU energy integrated
from the sampled power of every metered GPU (linearly interpolated at the window's edges).
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from llem_schema import LoadConfig, RawProcessResult, RequestRecord, SteadyStateMetrics

__all__ = ["MIN_STEADY_STATE_S", "Interval", "in_flight", "steady_state", "steady_window"]

MIN_STEADY_STATE_S: Final = 30.0
"""A steady state shorter than this is too short to read energy figures from: a warning."""


@dataclass(frozen=True)
class Interval:
    """One request on the experiment's clock: when it started and ended, and when each of
    its output tokens arrived."""

    start_s: float
    end_s: float
    token_times_s: tuple[float, ...]


def intervals(raws: Sequence[RawProcessResult], offsets_s: Sequence[float]) -> list[Interval]:
    """Every request that knows its start, on one clock (each process's shifted by its
    window's offset from the experiment's start)."""
    found: list[Interval] = []
    for raw, offset in zip(raws, offsets_s, strict=True):
        for record in raw.requests:
            if record.start_s is not None:
                found.append(_interval(record, offset))
    return found


def _interval(record: RequestRecord, offset_s: float) -> Interval:
    start = offset_s + (record.start_s or 0.0)
    if record.ttft_ms is None:
        return Interval(start, start, ())
    first = start + record.ttft_ms / 1000.0
    times = tuple(accumulate((gap / 1000.0 for gap in record.itl_ms), initial=first))
    return Interval(start, times[-1], times)


def in_flight(requests: Sequence[Interval]) -> list[tuple[float, int]]:
    """The requests in flight as steps: ``(time, level from then on)``, in time order."""
    events = sorted(
        [(r.start_s, 1) for r in requests] + [(r.end_s, -1) for r in requests],
        key=lambda event: (event[0], -event[1]),
    )
    steps: list[tuple[float, int]] = []
    level = 0
    for time_s, change in events:
        level += change
        if steps and steps[-1][0] == time_s:
            steps[-1] = (time_s, level)
        else:
            steps.append((time_s, level))
    return steps


def steady_window(steps: Sequence[tuple[float, int]], target: int) -> tuple[float, float] | None:
    """From the first time the level reaches ``target`` to the last time it leaves it;
    None if it never does (or only for an instant)."""
    reached = [i for i, (_, level) in enumerate(steps) if level >= target]
    if not reached:
        return None
    first, last = reached[0], reached[-1]
    if last + 1 >= len(steps):
        return None
    start, end = steps[first][0], steps[last + 1][0]
    return (start, end) if end > start else None


def target_concurrency(
    load: LoadConfig, steps: Sequence[tuple[float, int]], arrivals_end_s: float
) -> int | None:
    """Under an arrival rate, the median level weighted by time while requests arrive (at
    least 1; the rate, not a bound it may never reach, sets the load); with every request
    sent at once, ``load.max_concurrency``; None for a load with neither."""
    if load.rate_per_s is None:
        return load.max_concurrency
    weights: dict[int, float] = {}
    for (t0, level), (t1, _) in pairwise(steps):
        overlap = min(t1, arrivals_end_s) - t0
        if overlap > 0:
            weights[level] = weights.get(level, 0.0) + overlap
    if not weights:
        return 1
    total = math.fsum(weights.values())
    running = 0.0
    for level in sorted(weights):
        running += weights[level]
        if running >= total / 2:
            return max(1, min(level, load.max_concurrency or level))
    return 1  # pragma: no cover - the loop always reaches half


def steady_state(
    raws: Sequence[RawProcessResult],
    offsets_s: Sequence[float],
    load: LoadConfig,
    samples: pa.Table | None,
) -> tuple[SteadyStateMetrics | None, str | None]:
    """The steady-state figures of the run, and a warning when there is none to report or
    it is too short; (None, None) where the load defines no steady state."""
    requests = intervals(raws, offsets_s)
    if len(requests) < 2:
        return None, None
    steps = in_flight(requests)
    arrivals_end = max(r.start_s for r in requests)
    target = target_concurrency(load, steps, arrivals_end)
    if target is None:
        return None, None
    window = steady_window(steps, target)
    if window is None:
        peak = max(level for _, level in steps)
        return None, (
            f"the run never reached a steady state: requests in flight peaked at {peak}, "
            f"below the target of {target}; send more requests, or faster, to measure one"
        )
    start, end = window
    tokens = sum(1 for r in requests for t in r.token_times_s if start <= t <= end)
    energy = None if samples is None else window_energy_j(samples, start, end)
    metrics = SteadyStateMetrics(
        steady_state_window=(start, end),
        target_concurrency=target,
        duration_s=end - start,
        output_tokens=tokens,
        output_tokens_per_s=tokens / (end - start),
        gpu_energy_j=energy,
        energy_per_output_token_j=energy / tokens if energy is not None and tokens else None,
    )
    warning = None
    if end - start < MIN_STEADY_STATE_S:
        warning = (
            f"the steady state lasted {end - start:.1f} s, under {MIN_STEADY_STATE_S:g} s: "
            "its energy figures rest on few power samples; send more requests (n, or "
            "load.duration_s) so that it lasts longer"
        )
    return metrics, warning


def window_energy_j(samples: pa.Table, start_s: float, end_s: float) -> float | None:
    """Energy of every GPU within ``[start_s, end_s]``, J: the trapezoid of its power
    samples, interpolated at the edges; None without two power readings of a GPU."""
    readings = samples.select(["timestamp_s", "gpu_index", "gpu_power_w"]).filter(
        pc.is_valid(samples["gpu_power_w"])
    )
    total: list[float] = []
    for gpu in pc.unique(readings["gpu_index"]):
        one = readings.filter(pc.equal(readings["gpu_index"], gpu)).sort_by("timestamp_s")
        times = [float(t) for t in one["timestamp_s"].to_pylist() if t is not None]
        powers = [float(w) for w in one["gpu_power_w"].to_pylist() if w is not None]
        if len(times) < 2:
            continue
        total.append(_clipped_trapezoid(times, powers, start_s, end_s))
    return math.fsum(total) if total else None


def _clipped_trapezoid(
    times: Sequence[float], powers: Sequence[float], start_s: float, end_s: float
) -> float:
    points = [(t, p) for t, p in zip(times, powers, strict=True) if start_s < t < end_s]
    for edge in (start_s, end_s):
        if times[0] <= edge <= times[-1]:
            points.append((edge, _interpolate(times, powers, edge)))
    points.sort()
    return math.fsum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in pairwise(points))


def _interpolate(times: Sequence[float], powers: Sequence[float], at: float) -> float:
    for (t0, p0), (t1, p1) in pairwise(zip(times, powers, strict=True)):
        if t0 <= at <= t1:
            return p0 if t1 == t0 else p0 + (p1 - p0) * (at - t0) / (t1 - t0)
    return statistics.fmean(powers)  # pragma: no cover - callers pass an edge inside

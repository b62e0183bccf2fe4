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
from itertools import chain, pairwise
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from llem_schema import LoadConfig, RawProcessResult, SteadyStateMetrics

__all__ = [
    "MIN_STEADY_STATE_S",
    "Arrivals",
    "Steps",
    "arrivals",
    "in_flight",
    "steady_state",
    "steady_window",
    "target_concurrency",
    "window_energy_j",
]

MIN_STEADY_STATE_S: Final = 30.0
"""A steady state shorter than this is too short to read energy figures from: a warning."""

Floats: TypeAlias = npt.NDArray[np.float64]
Ints: TypeAlias = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Arrivals:
    """The requests that know their start, on the experiment's clock: when each started and
    ended (its last token; its start if it had none), and when every output token arrived
    (in no particular order)."""

    starts_s: Floats
    ends_s: Floats
    token_times_s: Floats


@dataclass(frozen=True)
class Steps:
    """The requests in flight, a step function in time order: ``levels[i]`` of them from
    ``times_s[i]`` until the next time."""

    times_s: Floats
    levels: Ints


def arrivals(raws: Sequence[RawProcessResult], offsets_s: Sequence[float]) -> Arrivals:
    """Every request that knows its start, on one clock (each process's shifted by its
    window's offset from the experiment's start).

    A request's first token arrives at its start + TTFT, each later one its inter-token gap
    after the one before: a running sum, gap by gap, whose last value is the request's end
    to the bit. Requests with the same number of tokens are summed together, as the rows of
    one array.
    """
    timed = [[r for r in raw.requests if r.start_s is not None] for raw in raws]
    records = list(chain.from_iterable(timed))
    size = len(records)
    shifts = np.repeat(np.asarray(offsets_s, np.float64), [len(t) for t in timed])
    starts = shifts + np.fromiter((r.start_s or 0.0 for r in records), np.float64, size)
    firsts = starts + np.fromiter((r.ttft_ms or 0.0 for r in records), np.float64, size) / 1e3
    tokens = np.fromiter(
        (0 if r.ttft_ms is None else 1 + len(r.itl_ms) for r in records), np.int64, size
    )
    # One row per request with tokens, shortest first: a placeholder for its first token's
    # time, then its gaps in ms.
    by_tokens = np.argsort(tokens, kind="stable")
    produced = by_tokens[size - np.count_nonzero(tokens) :].tolist()
    rows = chain.from_iterable((0.0, *records[i].itl_ms) for i in produced)
    times = np.fromiter(rows, np.float64, int(tokens.sum()))
    ends = starts.copy()
    lengths, counts = np.unique(tokens[by_tokens], return_counts=True)
    request_at, token_at = 0, 0
    for length, count in zip(lengths.tolist(), counts.tolist(), strict=True):
        members = by_tokens[request_at : request_at + count]
        request_at += count
        if length == 0:
            continue
        block = times[token_at : token_at + count * length].reshape(count, length)
        token_at += count * length
        block[:, 0] = firsts[members]
        block[:, 1:] /= 1e3  # ms to s
        np.add.accumulate(block, axis=1, out=block)
        ends[members] = block[:, -1]
    return Arrivals(starts_s=starts, ends_s=ends, token_times_s=times)


def in_flight(starts_s: Floats, ends_s: Floats) -> Steps:
    """The requests in flight as steps, from the requests' start and end times (a request
    that starts as another ends counts as overlapping it for that instant)."""
    times = np.concatenate([starts_s, ends_s])
    changes = np.concatenate([np.ones(starts_s.size, np.int64), np.full(ends_s.size, -1, np.int64)])
    order = np.lexsort((-changes, times))  # by time, starts before ends
    times, levels = times[order], np.cumsum(changes[order])
    last = np.append(times[1:] != times[:-1], True)  # the level each instant ends with
    return Steps(times_s=times[last], levels=levels[last])


def steady_window(steps: Steps, target: int) -> tuple[float, float] | None:
    """From the first time the level reaches ``target`` to the last time it leaves it;
    None if it never does (or only for an instant)."""
    reached = np.flatnonzero(steps.levels >= target)
    if reached.size == 0:
        return None
    first, last = int(reached[0]), int(reached[-1])
    if last + 1 >= steps.times_s.size:
        return None
    start, end = float(steps.times_s[first]), float(steps.times_s[last + 1])
    return (start, end) if end > start else None


def target_concurrency(load: LoadConfig, steps: Steps, arrivals_end_s: float) -> int | None:
    """Under an arrival rate, the median level weighted by time while requests arrive (at
    least 1; the rate, not a bound it may never reach, sets the load); with every request
    sent at once, ``load.max_concurrency``; None for a load with neither."""
    if load.rate_per_s is None:
        return load.max_concurrency
    overlap = np.minimum(steps.times_s[1:], arrivals_end_s) - steps.times_s[:-1]
    counted = overlap > 0
    if not counted.any():
        return 1
    levels = steps.levels[:-1][counted]
    weights = np.bincount(levels, weights=overlap[counted])  # seconds at each level
    present: list[int] = np.unique(levels).tolist()
    total = math.fsum(weights[present].tolist())
    running = 0.0
    for level in present:
        running += float(weights[level])
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
    if load.rate_per_s is None and load.max_concurrency is None:
        return None, None  # everything at once with no bound: no target (see above)
    requests = arrivals(raws, offsets_s)
    if requests.starts_s.size < 2:
        return None, None
    steps = in_flight(requests.starts_s, requests.ends_s)
    target = target_concurrency(load, steps, float(requests.starts_s.max()))
    if target is None:
        return None, None
    window = steady_window(steps, target)
    if window is None:
        peak = int(steps.levels.max())
        return None, (
            f"the run never reached a steady state: requests in flight peaked at {peak}, "
            f"below the target of {target}; send more requests, or faster, to measure one"
        )
    start, end = window
    times = requests.token_times_s
    tokens = int(np.count_nonzero((times >= start) & (times <= end)))
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

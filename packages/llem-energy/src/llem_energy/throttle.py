"""Throttling seen in a window, from the clock-event reasons the sampler recorded."""

import itertools
from collections.abc import Sequence
from typing import Final

import pynvml

from llem_schema import PowerSample, ThermalThrottleInfo

__all__ = ["THROTTLE_REASONS", "summarise_throttle"]

THROTTLE_REASONS: Final[dict[str, int]] = {
    "hw_thermal": int(pynvml.nvmlClocksEventReasonHwThermalSlowdown),
    "sw_thermal": int(pynvml.nvmlClocksEventReasonSwThermalSlowdown),
    "power_cap": int(pynvml.nvmlClocksEventReasonSwPowerCap),
    "hw_power_brake": int(pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown),
}
"""The clock-event reasons that count as throttling, by ThermalThrottleInfo field name.

Idle, application-clock and sync-boost reasons lower clocks without limiting the work, so
they are not throttling."""

_ANY_THROTTLE: Final = sum(THROTTLE_REASONS.values())


def _union_length_s(intervals: list[tuple[float, float]]) -> float:
    total = 0.0
    end = float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarise_throttle(samples: Sequence[PowerSample]) -> ThermalThrottleInfo:
    """Which throttle kinds were seen, for how long, and the temperatures, over ``samples``.

    A sample with a throttle reason counts the time until that GPU's next sample as
    throttled; ``throttled_s`` is the length of the union of those stretches over all GPUs
    (two GPUs throttled at once count once). ``temperature_start_c`` is the highest of each
    GPU's first temperature reading.
    """
    seen = dict.fromkeys(THROTTLE_REASONS, False)
    by_gpu: dict[int, list[PowerSample]] = {}
    for sample in samples:
        by_gpu.setdefault(sample.gpu_index, []).append(sample)
        reasons = sample.clock_event_reasons or 0
        for kind, bit in THROTTLE_REASONS.items():
            if reasons & bit:
                seen[kind] = True
    intervals: list[tuple[float, float]] = []
    starts: list[float] = []
    for series in by_gpu.values():
        ordered = sorted(series, key=lambda s: s.timestamp_s)
        for current, following in itertools.pairwise(ordered):
            if (current.clock_event_reasons or 0) & _ANY_THROTTLE:
                intervals.append((current.timestamp_s, following.timestamp_s))
        first = next(
            (s.gpu_temperature_c for s in ordered if s.gpu_temperature_c is not None), None
        )
        if first is not None:
            starts.append(first)
    temperatures = [s.gpu_temperature_c for s in samples if s.gpu_temperature_c is not None]
    return ThermalThrottleInfo(
        detected=any(seen.values()),
        throttled_s=_union_length_s(intervals),
        temperature_start_c=max(starts) if starts else None,
        temperature_peak_c=max(temperatures) if temperatures else None,
        **seen,
    )

"""Throttling seen in a window, from the clock-event reasons the sampler recorded."""

import itertools
from collections.abc import Sequence
from typing import Final

import pynvml

from llem_schema import PowerSample, ThermalThrottleInfo

__all__ = ["SLOWDOWN_REASONS", "THROTTLE_REASONS", "summarise_throttle"]

SLOWDOWN_REASONS: Final[dict[str, int]] = {
    "hw_thermal": int(pynvml.nvmlClocksEventReasonHwThermalSlowdown),
    "sw_thermal": int(pynvml.nvmlClocksEventReasonSwThermalSlowdown),
    "hw_slowdown": int(pynvml.nvmlClocksEventReasonHwSlowdown),
    "hw_power_brake": int(pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown),
}
"""The clock-event reasons that slow a GPU down for a cause outside the work, warned about."""
THROTTLE_REASONS: Final[dict[str, int]] = {
    **SLOWDOWN_REASONS,
    "power_cap": int(pynvml.nvmlClocksEventReasonSwPowerCap),
}
"""The clock-event reasons that count as throttling, by ThermalThrottleInfo field name.

The software power cap is how a GPU at full inference load normally runs (H100s sit at
their cap): it is recorded, with its time, as information. Idle, application-clock and
sync-boost reasons lower clocks without limiting the work, so they are not throttling."""

_ANY_THROTTLE: Final = sum(THROTTLE_REASONS.values())
_ANY_SLOWDOWN: Final = sum(SLOWDOWN_REASONS.values())
_POWER_CAP: Final = THROTTLE_REASONS["power_cap"]


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
    (two GPUs throttled at once count once), ``slowdown_s`` the same for the slowdowns that
    are warned about and ``power_cap_s`` for the software power cap. ``temperature_start_c``
    is the highest of each GPU's first temperature reading.
    """
    seen = dict.fromkeys(THROTTLE_REASONS, False)
    by_gpu: dict[int, list[PowerSample]] = {}
    for sample in samples:
        by_gpu.setdefault(sample.gpu_index, []).append(sample)
        reasons = sample.clock_event_reasons or 0
        for kind, bit in THROTTLE_REASONS.items():
            if reasons & bit:
                seen[kind] = True
    intervals: dict[int, list[tuple[float, float]]] = {
        _ANY_THROTTLE: [],
        _ANY_SLOWDOWN: [],
        _POWER_CAP: [],
    }
    starts: list[float] = []
    for series in by_gpu.values():
        ordered = sorted(series, key=lambda s: s.timestamp_s)
        for current, following in itertools.pairwise(ordered):
            reasons = current.clock_event_reasons or 0
            for mask, stretches in intervals.items():
                if reasons & mask:
                    stretches.append((current.timestamp_s, following.timestamp_s))
        first = next(
            (s.gpu_temperature_c for s in ordered if s.gpu_temperature_c is not None), None
        )
        if first is not None:
            starts.append(first)
    temperatures = [s.gpu_temperature_c for s in samples if s.gpu_temperature_c is not None]
    return ThermalThrottleInfo(
        detected=any(seen.values()),
        throttled_s=_union_length_s(intervals[_ANY_THROTTLE]),
        slowdown_s=_union_length_s(intervals[_ANY_SLOWDOWN]),
        power_cap_s=_union_length_s(intervals[_POWER_CAP]),
        source="samples",
        temperature_start_c=max(starts) if starts else None,
        temperature_peak_c=max(temperatures) if temperatures else None,
        **seen,
    )

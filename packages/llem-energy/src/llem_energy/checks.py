"""Measurement warnings: what was detected that makes a figure less trustworthy, and what
to do about it, as plain strings stored with the result.

:func:`measurement_warnings` takes :class:`MeasurementFacts` (everything a window measured,
plus what only the harness knows, such as the prompt count) and returns the warnings in a
stable order. The thresholds are module constants.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from llem_energy.sampler import SampleGap
from llem_schema import DeviceEnergy, PowerSample, ThermalThrottleInfo

__all__ = [
    "GAP_FACTOR",
    "MIN_PROMPTS",
    "MIN_WINDOW_S",
    "THERMAL_DRIFT_C",
    "MeasurementFacts",
    "measurement_warnings",
    "thermal_drift_c",
]

MIN_WINDOW_S: Final = 60.0
"""A window shorter than this is dominated by start/stop effects."""
THERMAL_DRIFT_C: Final = 10.0
"""A GPU whose temperature rises more than this in the window was not thermally steady."""
MIN_PROMPTS: Final = 30
"""Fewer prompts than this give unstable percentiles and per-token figures."""
GAP_FACTOR: Final = 2.0
"""A gap between samples longer than this many sampler periods is reported."""


@dataclass(frozen=True, slots=True)
class MeasurementFacts:
    """What a measurement found; every field but ``duration_s`` may be left empty."""

    duration_s: float
    """Measurement window length, s."""
    prompt_count: int | None = None
    """Prompts measured (the harness knows it; None: not judged)."""
    energy: Sequence[DeviceEnergy] = ()
    """Energy per device over the window."""
    energy_unavailable_reason: str | None = None
    """Why no energy source was read, when none was."""
    sample_period_s: float | None = None
    """The sampler's requested period, s."""
    gaps: Sequence[SampleGap] = ()
    """Sampler gaps longer than GAP_FACTOR periods."""
    throttle: ThermalThrottleInfo | None = None
    """Throttling seen in the window."""
    thermal_drift_c: Mapping[int, float] = field(default_factory=dict)
    """Per GPU index: highest temperature minus the first, deg C."""
    persistence_mode: Mapping[str, bool | None] = field(default_factory=dict)
    """Per GPU UUID: persistence mode (None: unknown)."""
    ecc_enabled: Mapping[str, bool | None] = field(default_factory=dict)
    """Per GPU UUID: ECC on (None: no ECC or unknown)."""
    mismatch_tolerance: float = 0.10
    """Relative counter vs integral difference above which a warning is given."""
    counter_update_period_s: Mapping[str, float] = field(default_factory=dict)
    """Per GPU UUID: observed time between energy counter updates, s."""
    counter_changes: Mapping[str, int] = field(default_factory=dict)
    """Per GPU UUID with a counter: how often it changed during the window."""
    read_errors: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    """Per GPU UUID: failed sample reads and the first message."""
    extra: Sequence[str] = ()
    """Warnings already phrased elsewhere (source fallback, a counter that went backwards)."""


def thermal_drift_c(samples: Iterable[PowerSample]) -> dict[int, float]:
    """Per GPU index: its highest temperature in ``samples`` minus its first, deg C."""
    first: dict[int, float] = {}
    peak: dict[int, float] = {}
    for sample in samples:
        if sample.gpu_temperature_c is None:
            continue
        first.setdefault(sample.gpu_index, sample.gpu_temperature_c)
        peak[sample.gpu_index] = max(
            peak.get(sample.gpu_index, -math.inf), sample.gpu_temperature_c
        )
    return {index: peak[index] - first[index] for index in first}


def _energy(facts: MeasurementFacts) -> list[str]:
    if facts.energy_unavailable_reason is not None:
        return [
            f"no energy measured: {facts.energy_unavailable_reason}; "
            "throughput and latency are still valid"
        ]
    return []


def _window(facts: MeasurementFacts) -> list[str]:
    if facts.duration_s < MIN_WINDOW_S:
        return [
            f"measurement window was {facts.duration_s:.1f} s, shorter than {MIN_WINDOW_S:.0f} s: "
            "start/stop effects weigh on the energy figures; measure more prompts or more "
            "tokens so the window lasts at least a minute"
        ]
    return []


def _prompts(facts: MeasurementFacts) -> list[str]:
    if facts.prompt_count is not None and facts.prompt_count < MIN_PROMPTS:
        return [
            f"only {facts.prompt_count} prompts were measured (fewer than {MIN_PROMPTS}): "
            f"latency percentiles and per-token energy are unstable; measure at least {MIN_PROMPTS}"
        ]
    return []


def _drift(facts: MeasurementFacts) -> list[str]:
    return [
        f"GPU {index} warmed by {rise:.1f} °C during the window (more than "
        f"{THERMAL_DRIFT_C:.0f} °C): it was not thermally steady; warm up longer "
        "(warmup.until_converged) or measure a longer window"
        for index, rise in sorted(facts.thermal_drift_c.items())
        if rise > THERMAL_DRIFT_C
    ]


def _persistence(facts: MeasurementFacts) -> list[str]:
    return [
        f"persistence mode is off on GPU {uuid}: the driver may unload between runs, adding "
        "start-up latency and idle-power noise; enable it with `sudo nvidia-smi -pm 1`"
        for uuid, on in facts.persistence_mode.items()
        if on is False
    ]


def _ecc(facts: MeasurementFacts) -> list[str]:
    return [
        f"ECC is off on GPU {uuid}: memory power and bandwidth differ from ECC-on GPUs, so "
        "compare only with ECC-off runs, or enable it (`sudo nvidia-smi -e 1`, then reboot)"
        for uuid, on in facts.ecc_enabled.items()
        if on is False
    ]


def _baseline(facts: MeasurementFacts) -> list[str]:
    missing = [
        e.device_uuid for e in facts.energy if e.baseline is None or e.baseline.power_w is None
    ]
    if not missing:
        return []
    return [
        f"no idle baseline for {', '.join(missing)}: baseline-adjusted energy is unavailable; "
        "enable baseline measurement (baseline.enabled: true) and keep the devices idle while "
        "it runs"
    ]


def _throttle(facts: MeasurementFacts) -> list[str]:
    throttle = facts.throttle
    if throttle is None or not throttle.detected:
        return []
    kinds = [
        label
        for label, seen in (
            ("hardware thermal", throttle.hw_thermal),
            ("software thermal", throttle.sw_thermal),
            ("power cap", throttle.power_cap),
            ("hardware power brake", throttle.hw_power_brake),
        )
        if seen
    ]
    return [
        f"GPU clocks were throttled ({', '.join(kinds)}) for {throttle.throttled_s:.1f} s of the "
        "window: energy and latency describe a throttled GPU; improve cooling, check the power "
        "limit (`nvidia-smi -q -d PERFORMANCE`), or let the GPU cool between runs"
    ]


def _gaps(facts: MeasurementFacts) -> list[str]:
    if not facts.gaps or facts.sample_period_s is None:
        return []
    by_gpu: dict[int, list[SampleGap]] = {}
    for gap in facts.gaps:
        by_gpu.setdefault(gap.gpu_index, []).append(gap)
    return [
        f"the power sampler left {len(gaps)} gap(s) on GPU {index}, the longest "
        f"{max(g.gap_s for g in gaps):.3f} s (over {GAP_FACTOR:g}x its {facts.sample_period_s:.3f} s "
        "period): the timeseries and the integrated energy have holes; lower "
        "energy.sample_rate_hz or reduce CPU load"
        for index, gaps in sorted(by_gpu.items())
    ]


def _mismatch(facts: MeasurementFacts) -> list[str]:
    warnings: list[str] = []
    for e in facts.energy:
        counter, integrated = e.counter_energy_j, e.integrated_energy_j
        if counter is None or integrated is None:
            continue
        larger = max(counter, integrated)
        if larger <= 0.0:
            continue
        difference = abs(counter - integrated) / larger
        if difference > facts.mismatch_tolerance:
            warnings.append(
                f"{e.device_uuid}: the energy counter ({counter:.1f} J) and integrated power "
                f"({integrated:.1f} J) differ by {difference:.0%}, more than "
                f"{facts.mismatch_tolerance:.0%}: {e.method} energy is used; raise "
                "energy.sample_rate_hz or measure a longer window, and check the timeseries"
            )
    return warnings


def _counter_resolution(facts: MeasurementFacts) -> list[str]:
    warnings: list[str] = []
    for e in facts.energy:
        if e.domain != "gpu" or e.method != "counter":
            continue
        period = facts.counter_update_period_s.get(e.device_uuid)
        changes = facts.counter_changes.get(e.device_uuid)
        too_short = period is not None and facts.duration_s < period
        if too_short or (changes is not None and changes < 2):
            seen = f"~{period:.3f} s" if period is not None else "unknown"
            warnings.append(
                f"{e.device_uuid}: the {facts.duration_s:.3f} s window is too short for the "
                f"energy counter (it changed {changes if changes is not None else 'an unknown number of'} "
                f"time(s); update period {seen}): the counter figure is coarse; measure a longer window"
            )
    return warnings


def _read_errors(facts: MeasurementFacts) -> list[str]:
    return [
        f"{count} sample read(s) failed on GPU {uuid} (first: {first}): the timeseries has holes"
        for uuid, (count, first) in facts.read_errors.items()
    ]


def machine_warnings(facts: MeasurementFacts) -> list[str]:
    """The warnings a machine calls for before any window opens (``llem env``): the energy
    source, persistence mode and ECC; the window-dependent checks are not judged."""
    checks = (_energy, _persistence, _ecc)
    return [*facts.extra, *(warning for check in checks for warning in check(facts))]


def measurement_warnings(facts: MeasurementFacts) -> list[str]:
    """Every warning ``facts`` call for, each saying what was detected and what to do."""
    checks = (
        _energy,
        _window,
        _prompts,
        _baseline,
        _persistence,
        _ecc,
        _drift,
        _throttle,
        _gaps,
        _read_errors,
        _mismatch,
        _counter_resolution,
    )
    return [*facts.extra, *(warning for check in checks for warning in check(facts))]

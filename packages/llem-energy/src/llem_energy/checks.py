"""Measurement warnings: what was detected that makes a figure less trustworthy, and what
to do about it, as :class:`~llem_schema.MeasurementWarning` objects (a stable code from
``llem_schema.WARNING_CODES``, a message, the figures) stored with the result.

:func:`measurement_warnings` takes :class:`MeasurementFacts` (everything a window measured,
plus what only the harness knows, such as the prompt count) and returns the warnings in a
stable order. The thresholds are module constants.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from llem_energy.sampler import SampleGap
from llem_schema import (
    DeviceEnergy,
    MeasurementWarning,
    PowerSample,
    ThermalThrottleInfo,
)

__all__ = [
    "GAP_FACTOR",
    "MIN_PROMPTS",
    "MIN_WINDOW_S",
    "THERMAL_DRIFT_C",
    "MeasurementFacts",
    "measurement_warnings",
    "thermal_drift_c",
    "warning",
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
    """Why no energy source was read, when none was, in a few words."""
    energy_unavailable_details: str | None = None
    """What each source said when it could not be opened."""
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
    mig_enabled: Mapping[str, bool | None] = field(default_factory=dict)
    """Per GPU UUID: MIG mode on (None: unknown or not MIG-capable)."""
    power_reading: Mapping[str, str] = field(default_factory=dict)
    """Per GPU UUID: what the sampler read as power, ``instant`` or ``averaged``."""
    module_power: Sequence[str] = ()
    """GPU UUIDs whose power is read for the whole module (Grace Hopper), not the GPU."""
    foreign_pids: Mapping[str, Sequence[int]] = field(default_factory=dict)
    """Per GPU UUID: compute processes not of this run, at window start or end."""
    power_limit_w: Mapping[str, float] = field(default_factory=dict)
    """Per GPU UUID: the power limit in force at window start, W."""
    peak_power_w: Mapping[str, float] = field(default_factory=dict)
    """Per GPU UUID: the highest power read in the window, W."""
    in_container: bool = False
    """This process runs in a container (NVML's PIDs are then the host's)."""
    simulated: int | None = None
    """How many GPUs were simulated (LLEM_SIMULATED_GPUS); None: real hardware."""
    extra: Sequence[MeasurementWarning] = ()
    """Warnings already made elsewhere (source fallback, a counter that went backwards)."""


def warning(
    code: str, message: str, **figures: float | int | str | bool | None
) -> MeasurementWarning:
    """A warning of ``code``, which must be one of ``llem_schema.WARNING_CODES``."""
    return MeasurementWarning.of(code, message, **figures)


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


def _energy(facts: MeasurementFacts) -> list[MeasurementWarning]:
    if facts.energy_unavailable_reason is not None:
        return [
            warning(
                "no_energy",
                f"no energy measured: {facts.energy_unavailable_reason} (throughput and "
                "latency are); --energy none skips energy without this warning",
                details=facts.energy_unavailable_details,
            )
        ]
    return []


def _simulated(facts: MeasurementFacts) -> list[MeasurementWarning]:
    if facts.simulated is None:
        return []
    return [
        warning(
            "simulated_gpus",
            f"the GPUs are simulated (LLEM_SIMULATED_GPUS={facts.simulated}): every energy and "
            "power figure is made up, for trying llem without hardware; unset "
            "LLEM_SIMULATED_GPUS to measure",
            gpus=facts.simulated,
        )
    ]


def _window(facts: MeasurementFacts) -> list[MeasurementWarning]:
    if facts.duration_s < MIN_WINDOW_S and facts.energy:  # it weighs on energy figures only
        return [
            warning(
                "short_window",
                f"measurement window was {facts.duration_s:.1f} s, shorter than "
                f"{MIN_WINDOW_S:.0f} s: start/stop effects weigh on the energy figures; measure "
                "more prompts or more tokens so the window lasts at least a minute",
                duration_s=facts.duration_s,
                min_window_s=MIN_WINDOW_S,
            )
        ]
    return []


def _prompts(facts: MeasurementFacts) -> list[MeasurementWarning]:
    if facts.prompt_count is not None and facts.prompt_count < MIN_PROMPTS:
        return [
            warning(
                "few_prompts",
                f"only {facts.prompt_count} prompts were measured (fewer than {MIN_PROMPTS}): "
                "latency percentiles and per-token energy are unstable; measure at least "
                f"{MIN_PROMPTS} per process",
                prompts=facts.prompt_count,
                min_prompts=MIN_PROMPTS,
            )
        ]
    return []


def _drift(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "thermal_drift",
            f"GPU {index} warmed by {rise:.1f} °C during the window (more than "
            f"{THERMAL_DRIFT_C:.0f} °C): it was not thermally steady; warm up longer "
            "(warmup.until_converged) or measure a longer window",
            gpu_index=index,
            rise_c=rise,
            limit_c=THERMAL_DRIFT_C,
        )
        for index, rise in sorted(facts.thermal_drift_c.items())
        if rise > THERMAL_DRIFT_C
    ]


def _persistence(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "persistence_off",
            f"persistence mode is off on GPU {uuid}: the driver may unload between runs, adding "
            "start-up latency and idle-power noise; enable it with `sudo nvidia-smi -pm 1`",
            device=uuid,
        )
        for uuid, on in facts.persistence_mode.items()
        if on is False
    ]


def _ecc(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "ecc_off",
            f"ECC is off on GPU {uuid}: memory power and bandwidth differ from ECC-on GPUs, so "
            "compare only with ECC-off runs, or enable it (`sudo nvidia-smi -e 1`, then reboot)",
            device=uuid,
        )
        for uuid, on in facts.ecc_enabled.items()
        if on is False
    ]


def _mig(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "mig_enabled",
            f"MIG is enabled on GPU {uuid}: NVML's energy counter and power are the whole "
            "GPU's, every MIG instance's work included, not the instance this run used; "
            "measure on a GPU with MIG off (`sudo nvidia-smi -i <index> -mig 0`) or keep the "
            "other instances idle",
            device=uuid,
        )
        for uuid, on in facts.mig_enabled.items()
        if on
    ]


def _module(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "module_power",
            f"GPU {uuid}'s own power cannot be read, only its module's (GPU, CPU and memory "
            "of a superchip): the timeseries and integrated energy cover the whole module; "
            "compare them only with module-scope runs",
            device=uuid,
        )
        for uuid in facts.module_power
    ]


def _foreign(facts: MeasurementFacts) -> list[MeasurementWarning]:
    container = (
        " (inside a container NVML gives the host's PIDs, so this run's own may be among "
        "them: run with the host's PID namespace to tell)"
        if facts.in_container
        else ""
    )
    return [
        warning(
            "foreign_process",
            f"GPU {uuid} ran compute processes that are not this run's (PIDs "
            f"{', '.join(map(str, pids))}) at the window's start or end: the GPU's energy "
            f"counts their work too; stop them or meter another GPU{container}",
            device=uuid,
            pids=", ".join(map(str, pids)),
        )
        for uuid, pids in sorted(facts.foreign_pids.items())
        if pids
    ]


POWER_BOUND_SLACK: Final = 0.1
"""Mean power below idle, or a reading above the power limit, by more than this share is
out of bounds."""


def _power_bounds(facts: MeasurementFacts) -> list[MeasurementWarning]:
    found: list[MeasurementWarning] = []
    for e in facts.energy:
        if e.domain != "gpu" or facts.duration_s <= 0.0:
            continue
        mean_w = e.energy_j / facts.duration_s
        idle_w = e.baseline.power_w if e.baseline is not None else None
        if idle_w is not None and mean_w < (1.0 - POWER_BOUND_SLACK) * idle_w:
            found.append(
                warning(
                    "power_out_of_bounds",
                    f"GPU {e.device_uuid} drew {mean_w:.1f} W on average in the window, below "
                    f"its idle baseline of {idle_w:.1f} W: the baseline was taken with the GPU "
                    "busy or in another state; re-measure it (baseline.cache_ttl_s: 0)",
                    device=e.device_uuid,
                    mean_power_w=mean_w,
                    idle_power_w=idle_w,
                )
            )
        limit_w = facts.power_limit_w.get(e.device_uuid)
        peak_w = facts.peak_power_w.get(e.device_uuid)
        if limit_w and peak_w is not None and peak_w > (1.0 + POWER_BOUND_SLACK) * limit_w:
            found.append(
                warning(
                    "power_out_of_bounds",
                    f"GPU {e.device_uuid} read {peak_w:.1f} W, above its {limit_w:.1f} W power "
                    "limit: the reading covers more than the GPU (a module), or the sensor is "
                    "off; check `nvidia-smi -q -d POWER`",
                    device=e.device_uuid,
                    peak_power_w=peak_w,
                    power_limit_w=limit_w,
                )
            )
    return found


def _baseline(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "no_baseline",
            f"no idle baseline for {e.device_uuid}: baseline-adjusted energy is unavailable; "
            "enable baseline measurement (baseline.enabled: true) and keep the devices idle "
            "while it runs",
            device=e.device_uuid,
        )
        for e in facts.energy
        if e.baseline is None or e.baseline.power_w is None
    ]


def _throttle(facts: MeasurementFacts) -> list[MeasurementWarning]:
    throttle = facts.throttle
    if throttle is None:
        return []
    kinds = [
        label
        for label, seen in (
            ("hardware thermal", throttle.hw_thermal),
            ("software thermal", throttle.sw_thermal),
            ("hardware slowdown", throttle.hw_slowdown),
            ("hardware power brake", throttle.hw_power_brake),
        )
        if seen
    ]
    if not kinds:  # the software power cap alone is how a GPU at full load runs
        return []
    slowdown_s = throttle.slowdown_s if throttle.slowdown_s is not None else throttle.throttled_s
    return [
        warning(
            "throttled",
            f"GPU clocks were slowed ({', '.join(kinds)}) for {slowdown_s:.1f} s of the "
            f"{facts.duration_s:.1f} s window: energy and latency describe a slowed GPU; "
            "improve cooling, check the power supply and limit (`nvidia-smi -q -d "
            "PERFORMANCE`), or let the GPU cool between runs",
            slowdown_s=slowdown_s,
            duration_s=facts.duration_s,
            kinds=", ".join(kinds),
        )
    ]


def _gaps(facts: MeasurementFacts) -> list[MeasurementWarning]:
    if not facts.gaps or facts.sample_period_s is None:
        return []
    by_gpu: dict[int, list[SampleGap]] = {}
    for gap in facts.gaps:
        by_gpu.setdefault(gap.gpu_index, []).append(gap)
    return [
        warning(
            "sample_gaps",
            f"the power sampler left {len(gaps)} gap(s) on GPU {index}, the longest "
            f"{max(g.gap_s for g in gaps):.3f} s (over {GAP_FACTOR:g}x its "
            f"{facts.sample_period_s:.3f} s period): the timeseries and the integrated energy "
            "have holes; lower energy.sample_rate_hz or reduce CPU load",
            gpu_index=index,
            gaps=len(gaps),
            longest_gap_s=max(g.gap_s for g in gaps),
            period_s=facts.sample_period_s,
        )
        for index, gaps in sorted(by_gpu.items())
    ]


def _mismatch(facts: MeasurementFacts) -> list[MeasurementWarning]:
    warnings: list[MeasurementWarning] = []
    for e in facts.energy:
        counter, integrated = e.counter_energy_j, e.integrated_energy_j
        if counter is None or integrated is None:
            continue
        larger = max(counter, integrated)
        if larger <= 0.0:
            continue
        difference = abs(counter - integrated) / larger
        if difference > facts.mismatch_tolerance:
            reading = facts.power_reading.get(e.device_uuid, "sampled")
            rate_hz = e.sample_rate_hz  # achieved; else the rate asked for
            if rate_hz is None and facts.sample_period_s:
                rate_hz = 1.0 / facts.sample_period_s
            rate = f" at {rate_hz:.3g} Hz" if rate_hz is not None else ""
            warnings.append(
                warning(
                    "counter_mismatch",
                    f"{e.device_uuid}: the energy counter ({counter:.1f} J) and the integral of "
                    f"{reading} power sampled{rate} ({integrated:.1f} J) differ by "
                    f"{difference:.0%}, more than {facts.mismatch_tolerance:.0%}: {e.method} "
                    "energy is used; raise energy.sample_rate_hz or measure a longer window, "
                    "and check the timeseries",
                    device=e.device_uuid,
                    counter_j=counter,
                    integrated_j=integrated,
                    power_reading=reading,
                    sample_rate_hz=rate_hz,
                    difference=difference,
                    tolerance=facts.mismatch_tolerance,
                )
            )
    return warnings


def _counter_resolution(facts: MeasurementFacts) -> list[MeasurementWarning]:
    warnings: list[MeasurementWarning] = []
    for e in facts.energy:
        if e.domain != "gpu" or e.method != "counter":
            continue
        period = facts.counter_update_period_s.get(e.device_uuid)
        changes = facts.counter_changes.get(e.device_uuid)
        too_short = period is not None and facts.duration_s < period
        if too_short or (changes is not None and changes < 2):
            seen = f"~{period:.3f} s" if period is not None else "unknown"
            times = changes if changes is not None else "an unknown number of"
            warnings.append(
                warning(
                    "counter_coarse",
                    f"{e.device_uuid}: the {facts.duration_s:.3f} s window is too short for "
                    f"the energy counter (it changed {times} time(s); update period {seen}): "
                    "the counter figure is coarse; measure a longer window",
                    device=e.device_uuid,
                    duration_s=facts.duration_s,
                    changes=changes,
                    update_period_s=period,
                )
            )
    return warnings


def _read_errors(facts: MeasurementFacts) -> list[MeasurementWarning]:
    return [
        warning(
            "sample_read_errors",
            f"{count} sample read(s) failed on GPU {uuid} (first: {first}): the timeseries "
            "has holes",
            device=uuid,
            failures=count,
        )
        for uuid, (count, first) in facts.read_errors.items()
    ]


def machine_warnings(facts: MeasurementFacts) -> list[MeasurementWarning]:
    """The warnings a machine calls for before any window opens (``llem env``): the energy
    source, persistence mode, ECC and MIG; the window-dependent checks are not judged."""
    checks = (_simulated, _energy, _persistence, _ecc, _mig, _module)
    return [*facts.extra, *(found for check in checks for found in check(facts))]


def measurement_warnings(facts: MeasurementFacts) -> list[MeasurementWarning]:
    """Every warning ``facts`` call for, each saying what was detected and what to do."""
    checks = (
        _simulated,
        _energy,
        _window,
        _prompts,
        _baseline,
        _persistence,
        _ecc,
        _mig,
        _module,
        _foreign,
        _power_bounds,
        _drift,
        _throttle,
        _gaps,
        _read_errors,
        _mismatch,
        _counter_resolution,
    )
    return [*facts.extra, *(found for check in checks for found in check(facts))]

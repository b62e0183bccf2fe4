"""Late aggregation: many processes' raw measurements become one :class:`ExperimentResult`.

The raw per-request data of every process is concatenated and every statistic is computed
once from it (percentiles of all values, never an average of per-process averages). Energy is
summed over distinct physical devices: a device (by UUID) that two processes both measured
counts once. Tokens and FLOPs are summed; the window runs from the earliest start to the
latest end; throughput is total output tokens over that window, and the per-process mean is
kept beside it, labelled. The latency statistics are llem_schema's
(:meth:`~llem_schema.LatencyStats.from_sorted`), given each metric's concatenated values
sorted and summed with numpy.
"""

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from itertools import chain
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import JsonValue, ValidationError

from llem_persistence.errors import AggregationError
from llem_persistence.steady_state import steady_state
from llem_schema import (
    AggregationMetadata,
    DeviceEnergy,
    EfficiencyMetrics,
    EnergyBreakdown,
    EnvironmentSnapshot,
    ExperimentConfig,
    ExperimentResult,
    FlopsEstimate,
    LatencyMetrics,
    LatencyStats,
    LoadConfig,
    MeasurementWarning,
    MultiGPUMetrics,
    RawProcessResult,
    RequestMetrics,
    RequestRecord,
    SloConfig,
    ThermalThrottleInfo,
    measurement_config_hash,
)
from llem_schema.measurement import BaselineMethod

__all__ = [
    "AGGREGATION_METHOD",
    "MIN_OVERLAP_FRACTION",
    "aggregate_results",
    "latency_metrics",
    "latency_stats",
]

logger = logging.getLogger(__name__)

AGGREGATION_METHOD: Final = "late_concatenation"
MIN_OVERLAP_FRACTION: Final = 0.9
"""Processes must run together for at least this share of the shortest one (their windows
open and close at common barriers, so they overlap all but a few milliseconds)."""
MAX_SKEW_FRACTION: Final = 0.02
MAX_SKEW_S: Final = 0.25
"""Window starts (or ends) further apart than the larger of these (a share of the window,
and seconds) are warned about."""


def aggregate_results(
    raw_results: Iterable[RawProcessResult],
    *,
    effective_config: Mapping[str, JsonValue],
    expected_processes: int | None = None,
    environment_snapshot: EnvironmentSnapshot | None = None,
    measurement_warnings: Sequence[MeasurementWarning] = (),
    timeseries: str | None = None,
    samples: pa.Table | None = None,
) -> ExperimentResult:
    """Combine the raw results of one experiment's processes into its result.

    ``expected_processes`` (default: the count the processes were launched with) decides
    completeness: a partial set aggregates with ``aggregation.complete = False`` and the
    missing indices named. ``samples`` (the merged power timeseries, timestamps from the
    earliest window's start) give the steady state its energy. Results of different experiments, models or backends, or two
    results for one process, are an :class:`AggregationError`.
    """
    raws = sorted(raw_results, key=lambda raw: raw.process_index)
    _check_same_experiment(raws)
    first = raws[0]
    expected = expected_processes if expected_processes is not None else first.num_processes
    _check_launch(raws, expected, effective_config)
    notes: list[MeasurementWarning] = []

    start = min(raw.start_time for raw in raws)
    end = max(raw.end_time for raw in raws)
    # Each window's length comes from the monotonic clock; wall-clock offsets place them.
    duration_s = max((raw.start_time - start).total_seconds() + raw.duration_s for raw in raws)
    if duration_s <= 0:
        raise AggregationError(f"experiment {first.experiment_id}: measurement window is empty")
    requests = [r for raw in raws for r in raw.requests]
    input_tokens = sum(r.input_tokens for r in requests)
    produced = [raw.output_tokens for raw in raws]  # each a sum over its requests: once
    output_tokens = sum(produced)

    devices, windows, attribution_ok = _distinct_devices(raws, notes)
    total_j = math.fsum(d.energy_j for d in devices.values()) if devices else None
    gpus = {uuid: d for uuid, d in devices.items() if d.domain == "gpu"}
    cpus = {uuid: d for uuid, d in devices.items() if d.domain != "gpu"}
    gpu_j = math.fsum(d.energy_j for d in gpus.values()) if gpus else None
    cpu_j = math.fsum(d.energy_j for d in cpus.values()) if cpus else None
    # Efficiency is of the GPUs where any was metered: host-wide RAPL energy depends on who
    # ran llem (root may read it) and on everything else the host did.
    scoped, scope_j = (gpus, gpu_j) if gpus else (cpus, cpu_j)
    # A process without energy of the scope (no GPU figure, or RAPL only where NVML failed)
    # would add its tokens to the others' energy. Host-wide RAPL energy is metered by one
    # process per host: a process counts as measured where its host's energy was.
    metered_hosts = {raw.hostname for raw in raws if any(e.domain != "gpu" for e in raw.energy)}
    unmeasured = [
        raw.process_index
        for raw in raws
        if not (
            any(e.domain == "gpu" for e in raw.energy) if gpus else raw.hostname in metered_hosts
        )
    ]
    if devices and unmeasured:
        scope = "GPU" if gpus else "CPU"
        notes.append(
            MeasurementWarning.of(
                "processes_without_energy",
                f"processes {_indices(unmeasured)} reported no {scope} energy: the energy "
                "figures cover the other processes only, and no efficiency figure is given; "
                "check the energy source on every worker",
                processes=_indices(unmeasured),
                scope=scope.lower(),
            )
        )
    breakdown = _breakdown(scoped, windows, scope_j, duration_s) if scope_j is not None else None
    # Tokens of processes without energy over energy of the others would overstate efficiency.
    efficiency_j = None if unmeasured else scope_j
    efficiency_adjusted_j = None if unmeasured or breakdown is None else breakdown.adjusted_j
    if breakdown is not None and breakdown.adjusted_j == 0.0:
        efficiency_adjusted_j = None  # 0 J would read as infinitely efficient
    if breakdown is not None and breakdown.adjusted_j == 0.0 and breakdown.raw_j > 0.0:
        notes.append(
            MeasurementWarning.of(
                "baseline_clamped",
                f"idle power over the window ({breakdown.baseline_energy_j:.1f} J) came to more "
                f"than the energy measured ({breakdown.raw_j:.1f} J): adjusted energy is "
                "clamped to 0 J and every adjusted efficiency figure withheld; the baseline "
                "was probably taken with the device busy, or in another state: re-measure it "
                "(baseline.cache_ttl_s: 0) with the device idle",
                baseline_energy_j=breakdown.baseline_energy_j,
                energy_j=breakdown.raw_j,
            )
        )

    missing = [i for i in range(expected) if i not in {raw.process_index for raw in raws}]
    if missing:
        notes.append(
            MeasurementWarning.of(
                "incomplete",
                f"incomplete: processes {_indices(missing)} of {expected} have no result; the "
                "figures cover the processes that finished",
                processes=_indices(missing),
            )
        )
    interrupted = [raw.process_index for raw in raws if raw.interrupted]
    if interrupted:
        notes.append(
            MeasurementWarning.of(
                "interrupted",
                f"incomplete: the run was stopped before every request of processes "
                f"{_indices(interrupted)} finished; the figures cover the requests that did",
                processes=_indices(interrupted),
            )
        )
    offsets = [(raw.start_time - start).total_seconds() for raw in raws]
    load = LoadConfig.model_validate(effective_config.get("load") or {})
    request_metrics = _request_metrics(
        raws, requests, offsets, duration_s, efficiency_j, load, effective_config
    )
    steady, steady_note = steady_state(raws, offsets, load, samples)
    if steady_note is not None:
        notes.append(MeasurementWarning.of("no_steady_state", steady_note))
    if request_metrics.failed_requests:
        first_error = next(r.error for r in requests if r.error is not None)
        notes.append(
            MeasurementWarning.of(
                "failed_requests",
                f"{request_metrics.failed_requests} of {request_metrics.requests} requests "
                f"failed (first: {first_error}); latency and energy per request cover the "
                "completed ones",
                failed=request_metrics.failed_requests,
                requests=request_metrics.requests,
            )
        )
    overlap_ok = _overlap_verified(raws)
    if not overlap_ok:
        notes.append(
            MeasurementWarning.of(
                "window_overlap",
                f"processes did not run together for at least {MIN_OVERLAP_FRACTION:.0%} of "
                "the shortest one: the window and throughput span idle gaps; check for "
                "stragglers or a slow launch",
                min_overlap=MIN_OVERLAP_FRACTION,
            )
        )
    start_skew_s, end_skew_s = _skews(raws)
    skew_limit_s = max(MAX_SKEW_S, MAX_SKEW_FRACTION * duration_s)
    if max(start_skew_s or 0.0, end_skew_s or 0.0) > skew_limit_s:
        notes.append(
            MeasurementWarning.of(
                "window_skew",
                f"the processes' windows started {start_skew_s or 0.0:.3f} s and ended "
                f"{end_skew_s or 0.0:.3f} s apart (more than {skew_limit_s:.3f} s): their "
                "devices were not metered over one window; check for a process that was "
                "stopped or could not reach the others",
                start_skew_s=start_skew_s,
                end_skew_s=end_skew_s,
                limit_s=skew_limit_s,
            )
        )
    for note in notes:  # data in the result's warnings, which a front end shows: no warning
        logger.info("%s: %s", first.experiment_id, note.message)

    return ExperimentResult(
        experiment_id=first.experiment_id,
        measurement_config_hash=first.measurement_config_hash,
        model=first.model,
        backend=first.backend,
        backend_version=first.backend_version,
        effective_config=dict(effective_config),
        start_time=start,
        end_time=max(end, start + timedelta(seconds=duration_s)),
        duration_s=duration_s,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        total_energy_j=total_j,
        gpu_energy_j=gpu_j,
        cpu_energy_j=cpu_j,
        energy_domains=[
            domain
            for domain in ("gpu", "cpu_package", "dram")
            if any(d.domain == domain for d in devices.values())
        ],
        energy_scope=None if scope_j is None else "gpu" if gpus else "cpu",
        energy_per_device_j={uuid: d.energy_j for uuid, d in sorted(devices.items())},
        baseline_power_w=breakdown.baseline_power_w if breakdown else None,
        energy_adjusted_j=breakdown.adjusted_j if breakdown else None,
        energy_breakdown=breakdown,
        output_tokens_per_s=output_tokens / duration_s,
        total_tokens_per_s=(input_tokens + output_tokens) / duration_s,
        mean_process_output_tokens_per_s=math.fsum(
            tokens / raw.duration_s
            for raw, tokens in zip(raws, produced, strict=True)
            if raw.duration_s > 0
        )
        / max(1, sum(1 for raw in raws if raw.duration_s > 0)),
        latency=latency_metrics(requests),
        flops=_flops(raws),
        efficiency=EfficiencyMetrics.from_energy(
            output_tokens, efficiency_j, efficiency_adjusted_j
        ),
        request_metrics=request_metrics,
        steady_state=steady,
        multi_gpu=_multi_gpu(devices),
        environment_snapshot=environment_snapshot,
        thermal_throttle=_throttle([raw.throttle for raw in raws if raw.throttle is not None]),
        warmup_result=first.warmup if first.process_index == 0 else None,
        measurement_warnings=[*measurement_warnings, *_process_warnings(raws), *notes],
        simulated=any(raw.simulated for raw in raws),
        timeseries=timeseries,
        process_results=raws,
        aggregation=AggregationMetadata(
            method=AGGREGATION_METHOD,
            num_processes=len(raws),
            expected_processes=max(expected, len(raws)),
            temporal_overlap_verified=overlap_ok,
            device_attribution_verified=attribution_ok,
            complete=not missing and not interrupted,
            missing_processes=missing,
            interrupted_processes=interrupted,
            start_skew_s=start_skew_s,
            end_skew_s=end_skew_s,
            warnings=notes,
        ),
    )


def _request_metrics(
    raws: Sequence[RawProcessResult],
    requests: Sequence[RequestRecord],
    offsets_s: Sequence[float],
    duration_s: float,
    energy_j: float | None,
    load: LoadConfig,
    effective_config: Mapping[str, JsonValue],
) -> RequestMetrics:
    """The ``requests`` of every process (concatenated in ``raws``' order), their starts on
    one clock (each process counts from its own window's start, ``offsets_s`` after the
    experiment's)."""
    starts: list[float] = []
    for raw, offset_s in zip(raws, offsets_s, strict=True):
        starts.extend(offset_s + r.start_s for r in raw.requests if r.start_s is not None)
    slo = effective_config.get("slo")
    return RequestMetrics.from_requests(
        requests,
        duration_s=duration_s,
        starts_s=starts,
        energy_j=energy_j,
        requested_rate_per_s=load.rate_per_s,
        slo=None if slo is None else SloConfig.model_validate(slo),
    )


def latency_stats(values_ms: npt.NDArray[np.float64]) -> LatencyStats | None:
    """:meth:`LatencyStats.from_values` of a float array: sorted and summed with numpy (its
    vectorised sort beats ``np.percentile``'s partitioning on millions of values), the
    statistics themselves llem_schema's :meth:`~LatencyStats.from_sorted`."""
    ordered = np.sort(values_ms)
    return LatencyStats.from_sorted(ordered, total_ms=float(ordered.sum()))


def latency_metrics(requests: Sequence[RequestRecord]) -> LatencyMetrics:
    """:meth:`LatencyMetrics.from_requests` of ``requests`` (all processes concatenated),
    each metric's values gathered straight into one array."""
    completed = [r for r in requests if r.error is None]  # failed ones: not latencies
    gaps = sum(len(r.itl_ms) for r in completed)
    return LatencyMetrics(
        ttft=latency_stats(
            np.fromiter((r.ttft_ms for r in completed if r.ttft_ms is not None), np.float64)
        ),
        itl=latency_stats(
            np.fromiter(chain.from_iterable(r.itl_ms for r in completed), np.float64, gaps)
        ),
        tpot=latency_stats(
            np.fromiter((t for r in completed if (t := r.tpot_ms) is not None), np.float64)
        ),
        e2e=latency_stats(
            np.fromiter((r.e2e_ms for r in completed if r.e2e_ms is not None), np.float64)
        ),
    )


def _check_same_experiment(raws: Sequence[RawProcessResult]) -> None:
    if not raws:
        raise AggregationError("nothing to aggregate: no process results")
    first = raws[0]
    for attribute in ("experiment_id", "model", "backend", "measurement_config_hash"):
        values = sorted({str(getattr(raw, attribute)) for raw in raws})
        if len(values) > 1:
            raise AggregationError(
                f"cannot aggregate results with different {attribute.replace('_', ' ')}s: "
                f"{', '.join(values)}"
            )
    indices = [raw.process_index for raw in raws]
    duplicates = sorted({i for i in indices if indices.count(i) > 1})
    if duplicates:
        raise AggregationError(
            f"experiment {first.experiment_id}: more than one result for processes "
            f"{_indices(duplicates)}"
        )


def _check_launch(
    raws: Sequence[RawProcessResult], expected: int, effective_config: Mapping[str, JsonValue]
) -> None:
    first = raws[0]
    launched = sorted({raw.num_processes for raw in raws})
    if len(launched) > 1:
        raise AggregationError(
            f"experiment {first.experiment_id}: processes disagree on how many were launched "
            f"({', '.join(map(str, launched))})"
        )
    outside = [raw.process_index for raw in raws if raw.process_index >= expected]
    if outside:
        raise AggregationError(
            f"experiment {first.experiment_id}: processes {_indices(outside)} are outside the "
            f"{expected} expected"
        )
    try:
        config_hash = measurement_config_hash(ExperimentConfig.model_validate(effective_config))
    except ValidationError:
        raise AggregationError(
            f"experiment {first.experiment_id}: effective_config is not a valid experiment config"
        ) from None
    if config_hash != first.measurement_config_hash:
        raise AggregationError(
            f"experiment {first.experiment_id}: effective_config (hash {config_hash}) is not "
            f"the config the processes measured (hash {first.measurement_config_hash})"
        )


def _distinct_devices(
    raws: Sequence[RawProcessResult], notes: list[MeasurementWarning]
) -> tuple[dict[str, DeviceEnergy], dict[str, float], bool]:
    """Each physical device once, with the window of the process whose figure is kept.

    A device two processes measured keeps the larger figure (the one covering more of the
    shared window). For a GPU that is an attribution problem and is reported; host-wide
    domains (RAPL package, DRAM) are seen by every process on the host by nature.
    """
    devices: dict[str, DeviceEnergy] = {}
    windows: dict[str, float] = {}
    seen_by: dict[str, list[int]] = {}
    for raw in raws:
        for energy in raw.energy:
            seen_by.setdefault(energy.device_uuid, []).append(raw.process_index)
            kept = devices.get(energy.device_uuid)
            if kept is None or energy.energy_j > kept.energy_j:
                devices[energy.device_uuid] = energy
                windows[energy.device_uuid] = raw.duration_s
    shared_gpus = {
        uuid: procs
        for uuid, procs in seen_by.items()
        if len(procs) > 1 and devices[uuid].domain == "gpu"
    }
    for uuid, procs in sorted(shared_gpus.items()):
        notes.append(
            MeasurementWarning.of(
                "shared_device",
                f"device {uuid} was measured by processes {_indices(procs)}; its energy is "
                "counted once; give each process its own device",
                device=uuid,
                processes=_indices(procs),
            )
        )
    return devices, windows, not shared_gpus


def _breakdown(
    devices: Mapping[str, DeviceEnergy],
    windows: Mapping[str, float],
    raw_j: float,
    duration_s: float,
) -> EnergyBreakdown:
    """Baseline subtracted per device over the window in which that device was measured;
    ``devices`` are those of the energy scope, ``raw_j`` their energy."""
    methods = {d.method for d in devices.values()}
    energy_method = methods.pop() if len(methods) == 1 else "mixed"
    baselines = {uuid: d.baseline for uuid, d in devices.items()}
    powers = {uuid: b.power_w for uuid, b in baselines.items() if b is not None}
    if len(powers) != len(devices) or any(p is None for p in powers.values()):
        return EnergyBreakdown(
            raw_j=raw_j,
            baseline_energy_j=None,
            adjusted_j=None,
            baseline_power_w=None,
            baseline_method="unavailable",
            baseline_age_s=None,
            duration_s=duration_s,
            energy_method=energy_method,
        )
    baseline_j = math.fsum((powers[uuid] or 0.0) * windows[uuid] for uuid in devices)
    cached_ages = [
        b.age_s
        for b in baselines.values()
        if b is not None and b.method == "cached" and b.age_s is not None
    ]
    method: BaselineMethod = "cached" if cached_ages else "fresh"
    return EnergyBreakdown(
        raw_j=raw_j,
        baseline_energy_j=baseline_j,
        adjusted_j=max(0.0, raw_j - baseline_j),
        baseline_power_w=math.fsum(p or 0.0 for p in powers.values()),
        baseline_method=method,
        baseline_age_s=max(cached_ages) if cached_ages else None,
        duration_s=duration_s,
        energy_method=energy_method,
    )


def _overlap_verified(raws: Sequence[RawProcessResult]) -> bool:
    if len(raws) < 2:
        return True
    latest_start = max(raw.start_time for raw in raws)
    earliest_end = min(raw.start_time + timedelta(seconds=raw.duration_s) for raw in raws)
    shortest_s = min(raw.duration_s for raw in raws)
    overlap_s = (earliest_end - latest_start).total_seconds()
    return overlap_s >= MIN_OVERLAP_FRACTION * shortest_s


def _flops(raws: Sequence[RawProcessResult]) -> FlopsEstimate | None:
    estimates = [raw.flops for raw in raws if raw.flops is not None]
    if len(estimates) != len(raws):
        return None  # a sum over some processes would understate the work
    methods = sorted({e.method for e in estimates})
    return FlopsEstimate(
        total_flops=math.fsum(e.total_flops for e in estimates),
        method=methods[0] if len(methods) == 1 else "mixed: " + "; ".join(methods),
    )


def _multi_gpu(devices: Mapping[str, DeviceEnergy]) -> MultiGPUMetrics | None:
    gpus = {uuid: d.energy_j for uuid, d in devices.items() if d.domain == "gpu"}
    if len(gpus) < 2:
        return None
    lowest = min(gpus.values())
    return MultiGPUMetrics(
        num_gpus=len(gpus),
        gpu_uuids=sorted(gpus),
        energy_max_over_min=max(gpus.values()) / lowest if lowest > 0 else None,
    )


def _throttle(infos: Sequence[ThermalThrottleInfo]) -> ThermalThrottleInfo | None:
    """Any process's throttling counts; seconds are the longest any process saw."""
    if not infos:
        return None
    starts = [i.temperature_start_c for i in infos if i.temperature_start_c is not None]
    peaks = [i.temperature_peak_c for i in infos if i.temperature_peak_c is not None]
    return ThermalThrottleInfo(
        detected=any(i.detected for i in infos),
        hw_thermal=any(i.hw_thermal for i in infos),
        sw_thermal=any(i.sw_thermal for i in infos),
        power_cap=any(i.power_cap for i in infos),
        hw_power_brake=any(i.hw_power_brake for i in infos),
        hw_slowdown=any(i.hw_slowdown for i in infos),
        throttled_s=max(i.throttled_s for i in infos),
        slowdown_s=_longest(i.slowdown_s for i in infos),
        power_cap_s=_longest(i.power_cap_s for i in infos),
        source=infos[0].source if len({i.source for i in infos}) == 1 else None,
        temperature_start_c=max(starts) if starts else None,
        temperature_peak_c=max(peaks) if peaks else None,
    )


_TEXT_IS_SUBJECT: Final = frozenset({"backend", "interrupted", "unclassified"})
"""Codes whose warnings say different things under one code: their text tells them apart."""


def _subject(warning: MeasurementWarning) -> tuple[str, str]:
    """What a warning is about: its code and the device it names, if any (the text itself
    for a code whose warnings differ in what they say, such as a backend's)."""
    figures = warning.figures
    device = figures.get("device", figures.get("devices", figures.get("gpu_index")))
    if device is None and warning.code in _TEXT_IS_SUBJECT:
        return warning.code, warning.message
    return warning.code, "" if device is None else str(device)


def _process_warnings(raws: Sequence[RawProcessResult]) -> list[MeasurementWarning]:
    """Each process's warnings, compared by code and subject, never by wording: those on a
    subject every process raised are given once, in the first process's words
    (``processes: all``); one only some raised names its process."""
    if len(raws) == 1:
        return list(raws[0].measurement_warnings)
    everywhere = set.intersection(
        *({_subject(w) for w in raw.measurement_warnings} for raw in raws)
    )
    merged: list[MeasurementWarning] = []
    for raw in raws:
        for w in raw.measurement_warnings:
            if _subject(w) not in everywhere:
                merged.append(
                    w.model_copy(
                        update={
                            "message": f"process {raw.process_index}: {w.message}",
                            "figures": {**w.figures, "process": raw.process_index},
                        }
                    )
                )
            elif raw is raws[0]:  # all of the first's, however many share a subject
                merged.append(w.model_copy(update={"figures": {**w.figures, "processes": "all"}}))
    return merged


def _skews(raws: Sequence[RawProcessResult]) -> tuple[float | None, float | None]:
    """How far apart the processes' windows started, and ended, s; None for one process."""
    if len(raws) < 2:
        return None, None
    starts = [raw.start_time for raw in raws]
    ends = [raw.start_time + timedelta(seconds=raw.duration_s) for raw in raws]
    return (max(starts) - min(starts)).total_seconds(), (max(ends) - min(ends)).total_seconds()


def _longest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _indices(indices: Iterable[int]) -> str:
    return ", ".join(str(i) for i in indices)

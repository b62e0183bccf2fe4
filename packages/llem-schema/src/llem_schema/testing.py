"""Small, valid example documents for tests, docs and backend authors' own test suites.

Every value is consistent with the validators (tokens add up, energy sums, efficiency follows
from energy), so a test can change one thing with ``model_copy`` or the keyword arguments and
know the rest is sound. Deterministic for a given ``seed``.
"""

import math
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, Field, JsonValue

from llem_schema._base import FrozenModel
from llem_schema.backend import ModelInfo
from llem_schema.config import ExperimentConfig, measurement_config_hash, parse_config
from llem_schema.measurement import (
    BaselineMeasurement,
    DeviceEnergy,
    DeviceInfo,
    EnergyBreakdown,
    FlopsEstimate,
    MeasurementWarning,
    WarmupResult,
)
from llem_schema.metrics import EfficiencyMetrics, LatencyMetrics, RequestMetrics
from llem_schema.raw import RawProcessResult
from llem_schema.records import RequestRecord, RequestTiming
from llem_schema.result import AggregationMetadata, ExperimentResult, MultiGPUMetrics
from llem_schema.warning_codes import classify_legacy

__all__ = [
    "EXAMPLE_BACKENDS",
    "EXAMPLE_START",
    "ExampleBatchSettings",
    "example_config",
    "example_raw_result",
    "example_requests",
    "example_result",
    "example_study",
    "example_warning",
]

EXAMPLE_START = datetime(2026, 11, 22, 14, 3, 5, tzinfo=UTC)
EXAMPLE_EXPERIMENT_ID = "tiny_pytorch_2026-11-22T14-03-05_0a1b2c"


class ExampleBatchSettings(FrozenModel):
    """A backend's settings model shaped like the PyTorch backend's, for tests that resolve
    configs where no backend is installed (see :data:`EXAMPLE_BACKENDS`)."""

    batch_size: int = Field(default=1, gt=0, description="Prompts generated together per batch.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = Field(
        default=None, description="Attention kernel; None: the framework's default."
    )
    torch_compile: bool = Field(default=False, description="Compile the model's forward.")


EXAMPLE_BACKENDS: Final[Mapping[str, type[BaseModel]]] = {"pytorch": ExampleBatchSettings}
"""Backend name -> settings model, as the harness passes the installed ones to
:func:`~llem_schema.parse_config` and :func:`~llem_schema.expand_study`."""


def example_config(**settings: object) -> ExperimentConfig:
    """A small CPU experiment on the built-in tiny model; ``settings`` override fields.

    Resolved with :data:`EXAMPLE_BACKENDS` when its backend is one of them, as the harness
    resolves a config with the installed backends.
    """
    data: dict[str, object] = {"n": 8, "max_new_tokens": 16, "baseline": {"duration_s": 5.0}}
    data |= settings
    backends = EXAMPLE_BACKENDS if data.get("backend", "pytorch") in EXAMPLE_BACKENDS else None
    return parse_config(data, backends=backends)


def example_requests(
    count: int, *, seed: int = 0, first_index: int = 0, max_new_tokens: int = 16
) -> list[RequestRecord]:
    """``count`` requests with plausible token timings, batches of four."""
    rng = random.Random(seed)
    records: list[RequestRecord] = []
    for offset in range(count):
        start = rng.uniform(0.0, 5.0)
        times = [start + rng.uniform(0.01, 0.08)]
        for _ in range(rng.randint(0, max_new_tokens - 1)):
            times.append(times[-1] + rng.uniform(0.005, 0.03))
        timing = RequestTiming(
            request_index=first_index + offset,
            batch_index=offset // 4,
            input_tokens=rng.randint(4, 64),
            output_tokens=len(times),
            start_s=start,
            token_times_s=times,
        )
        records.append(RequestRecord.from_timing(timing, origin_s=0.0))
    return records


def example_raw_result(
    *,
    process_index: int = 0,
    num_processes: int = 1,
    n_requests: int = 8,
    seed: int = 0,
    energy_j: float | None = 120.0,
    baseline_power_w: float | None = 5.0,
    duration_s: float = 10.0,
    start_time: datetime = EXAMPLE_START,
    device_uuid: str | None = None,
    config: ExperimentConfig | None = None,
    requests: Sequence[RequestRecord] | None = None,
) -> RawProcessResult:
    """One process's raw measurement on one GPU-like device (energy from its counter)."""
    config = config or example_config()
    uuid = device_uuid or f"GPU-00000000-0000-0000-0000-{process_index:012d}"
    energy: list[DeviceEnergy] = []
    if energy_j is not None:
        baseline = (
            BaselineMeasurement(method="fresh", power_w=baseline_power_w, age_s=0.0, duration_s=5.0)
            if baseline_power_w is not None
            else BaselineMeasurement(method="unavailable", power_w=None)
        )
        energy.append(
            DeviceEnergy(
                device_uuid=uuid,
                domain="gpu",
                energy_j=energy_j,
                method="counter",
                counter_energy_j=energy_j,
                integrated_energy_j=energy_j * 0.98,
                baseline=baseline,
            )
        )
    if requests is None:
        requests = example_requests(
            n_requests,
            seed=seed,
            first_index=process_index * n_requests,
            max_new_tokens=config.max_new_tokens,
        )
    return RawProcessResult(
        experiment_id=EXAMPLE_EXPERIMENT_ID,
        measurement_config_hash=measurement_config_hash(config),
        model=config.model,
        backend=config.backend,
        backend_version="example 1.0",
        process_index=process_index,
        num_processes=num_processes,
        hostname="example-host",
        model_info=ModelInfo(
            model=config.model,
            num_parameters=1_000_000,
            dtype="float32",
            device=f"cuda:{process_index}",
            device_indices=[process_index],
            device_uuids=[uuid] if uuid.startswith("GPU-") else [],
        ),
        devices=[DeviceInfo(kind="gpu", index=process_index, uuid=uuid, name="Example GPU")],
        start_time=start_time,
        end_time=start_time + timedelta(seconds=duration_s),
        duration_s=duration_s,
        requests=list(requests),
        energy=energy,
        sample_count=int(duration_s * 10) if energy else 0,
        peak_memory_mb=512.0,
        peak_memory_source="cuda",
        flops=FlopsEstimate(
            total_flops=2.0e9 * sum(r.output_tokens for r in requests),
            method="2 x parameters x tokens",
        ),
        warmup=WarmupResult(batches=3, duration_s=0.5, latencies_ms=[120.0, 100.0, 101.0]),
    )


def example_warning(warning: MeasurementWarning | str) -> MeasurementWarning:
    """``warning``, or a warning with the message ``warning`` and the code its wording names
    (``unclassified`` when it names none)."""
    if isinstance(warning, MeasurementWarning):
        return warning
    return MeasurementWarning(code=classify_legacy(warning), message=warning)


def example_result(
    raws: Sequence[RawProcessResult] | None = None,
    *,
    config: ExperimentConfig | None = None,
    timeseries: str | None = None,
    measurement_warnings: Sequence[MeasurementWarning | str] = (),
) -> ExperimentResult:
    """An :class:`ExperimentResult` assembled from ``raws`` (default: one example process).

    A plain assembly for tests: per-device energy counted once per UUID, percentiles from the
    concatenated requests. It is not llem's aggregation (``llem_persistence`` owns that).
    """
    config = config or example_config()
    raws = list(raws) if raws is not None else [example_raw_result(config=config)]
    start = min(raw.start_time for raw in raws)
    end = max(raw.end_time for raw in raws)
    duration_s = (end - start).total_seconds() or max(raw.duration_s for raw in raws)
    devices = {e.device_uuid: e for raw in raws for e in raw.energy}
    windows = {e.device_uuid: raw.duration_s for raw in raws for e in raw.energy}
    requests = [request for raw in raws for request in raw.requests]
    input_tokens = sum(raw.input_tokens for raw in raws)
    output_tokens = sum(raw.output_tokens for raw in raws)

    total_j = math.fsum(e.energy_j for e in devices.values()) if devices else None
    domains = {e.domain for e in devices.values()}
    gpus = [e.energy_j for e in devices.values() if e.domain == "gpu"]
    cpus = [e.energy_j for e in devices.values() if e.domain != "gpu"]
    gpu_j = math.fsum(gpus) if gpus else None
    cpu_j = math.fsum(cpus) if cpus else None
    scope_j = gpu_j if gpu_j is not None else cpu_j
    devices_in_scope = {
        uuid: e for uuid, e in devices.items() if (e.domain == "gpu") == (gpu_j is not None)
    }
    powers = {
        uuid: e.baseline.power_w if e.baseline else None for uuid, e in devices_in_scope.items()
    }
    has_baseline = bool(powers) and all(p is not None for p in powers.values())
    breakdown = None
    adjusted = None
    baseline_w = None
    if scope_j is not None:
        baseline_j = None
        if has_baseline:
            baseline_w = math.fsum(p for p in powers.values() if p is not None)
            baseline_j = math.fsum((p or 0.0) * windows[uuid] for uuid, p in powers.items())
            adjusted = max(0.0, scope_j - baseline_j)
        breakdown = EnergyBreakdown(
            raw_j=scope_j,
            baseline_energy_j=baseline_j,
            adjusted_j=adjusted,
            baseline_power_w=baseline_w,
            baseline_method="fresh" if has_baseline else "unavailable",
            baseline_age_s=None,
            duration_s=duration_s,
            energy_method="counter",
        )
    flops = [raw.flops.total_flops for raw in raws if raw.flops is not None]
    return ExperimentResult(
        experiment_id=raws[0].experiment_id,
        measurement_config_hash=raws[0].measurement_config_hash,
        model=config.model,
        backend=config.backend,
        backend_version=raws[0].backend_version,
        effective_config=config.model_dump(mode="json"),
        start_time=start,
        end_time=end,
        duration_s=duration_s,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        total_energy_j=total_j,
        gpu_energy_j=gpu_j,
        cpu_energy_j=cpu_j,
        energy_domains=[d for d in ("gpu", "cpu_package", "dram") if d in domains],
        energy_scope=None if scope_j is None else "gpu" if gpu_j is not None else "cpu",
        energy_per_device_j={uuid: e.energy_j for uuid, e in devices.items()},
        baseline_power_w=baseline_w,
        energy_adjusted_j=adjusted,
        energy_breakdown=breakdown,
        output_tokens_per_s=output_tokens / duration_s,
        total_tokens_per_s=(input_tokens + output_tokens) / duration_s,
        mean_process_output_tokens_per_s=math.fsum(
            raw.output_tokens / raw.duration_s for raw in raws
        )
        / len(raws),
        latency=LatencyMetrics.from_requests(requests),
        flops=FlopsEstimate(total_flops=math.fsum(flops), method="2 x parameters x tokens")
        if flops
        else None,
        efficiency=EfficiencyMetrics.from_energy(
            output_tokens, scope_j, None if adjusted == 0.0 else adjusted
        ),  # clamped: withheld, as aggregation does
        request_metrics=RequestMetrics.from_requests(
            requests,
            duration_s=duration_s,
            energy_j=scope_j,
            requested_rate_per_s=config.load.rate_per_s,
            slo=config.slo,
        ),
        multi_gpu=MultiGPUMetrics(
            num_gpus=len(devices),
            gpu_uuids=sorted(devices),
            energy_max_over_min=max(e.energy_j for e in devices.values())
            / min(e.energy_j for e in devices.values()),
        )
        if len(devices) > 1 and min(e.energy_j for e in devices.values()) > 0
        else None,
        warmup_result=raws[0].warmup,
        measurement_warnings=[example_warning(w) for w in measurement_warnings],
        timeseries=timeseries,
        process_results=raws,
        aggregation=AggregationMetadata(
            num_processes=len(raws),
            expected_processes=len(raws),
            temporal_overlap_verified=True,
            device_attribution_verified=True,
            complete=True,
        ),
    )


EXAMPLE_SWEEP: Final[Mapping[str, list[JsonValue]]] = {
    "pytorch.batch_size": [1, 4],
    "max_new_tokens": [8, 16],
}
"""The sweep of :func:`example_study`: two settings of two values, four points."""


def example_study(
    output_dir: str | PathLike[str],
    *,
    name: str = "grid",
    sweep: Mapping[str, Sequence[JsonValue]] = EXAMPLE_SWEEP,
    cycles: int = 2,
    energy_j: Callable[[Mapping[str, JsonValue], int], float] | None = None,
) -> Path:
    """A completed study written under ``output_dir`` as ``llem study`` leaves it: the
    manifest, each run's result directory and ``study.json``; returns the study directory.

    ``energy_j(overrides, cycle)`` gives each run's GPU energy (default: 100 J plus 10 J per
    point and 2 J per cycle). Runs are a minute apart from :data:`EXAMPLE_START`.
    """
    from llem_schema.study_config import parse_study
    from llem_schema.study_manifest import StudyManifest
    from llem_schema.study_plan import expand_study
    from llem_schema.study_result import summarize_study

    study = parse_study(
        {"name": name, "base": {"n": 8}, "sweep": dict(sweep), "cycles": cycles},
        backends=EXAMPLE_BACKENDS,
    )
    plan = expand_study(study, backends=EXAMPLE_BACKENDS)
    stamp = EXAMPLE_START.strftime("%Y-%m-%dT%H-%M-%S")
    directory = Path(output_dir) / f"{name}_{stamp}"
    manifest = StudyManifest.new(
        plan, study_id=directory.name, study_name=name, created_at=EXAMPLE_START
    )
    results: dict[int, ExperimentResult] = {}
    for run in plan.runs:
        point = plan.point(run.point_index)
        joules = (
            energy_j(point.overrides, run.cycle)
            if energy_j is not None
            else 100.0 + 10.0 * run.point_index + 2.0 * run.cycle
        )
        start = EXAMPLE_START + timedelta(minutes=run.run_index)
        raw = example_raw_result(
            config=point.config, seed=run.run_index, energy_j=joules, start_time=start
        )
        result = example_result([raw], config=point.config).model_copy(
            update={"experiment_id": f"{name}-run-{run.run_index}"}
        )
        saved = result.save(directory)
        results[run.run_index] = result
        finished = start + timedelta(seconds=30)
        manifest = manifest.with_entry(
            run.run_index,
            status="completed",
            started_at=start,
            finished_at=finished,
            experiment_id=result.experiment_id,
            result_path=saved.name,
            updated_at=finished,
        )
    finished_at = EXAMPLE_START + timedelta(minutes=len(plan.runs))
    manifest = manifest.with_status("completed", updated_at=finished_at)
    manifest.save(directory)
    summarize_study(
        manifest,
        results,
        cv_warning_threshold=study.cv_warning_threshold,
        finished_at=finished_at,
    ).save(directory)
    return directory

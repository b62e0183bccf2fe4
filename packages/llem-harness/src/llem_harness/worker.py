"""What each process does (step 3 of a run): load the model, open the energy meter on the
devices it was placed on, baseline, warmup, the energy window around inference, and the raw
result staged atomically."""

import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from llem_energy import EnergyMeter, cpu_model
from llem_harness.errors import HarnessError
from llem_harness.progress import Stages
from llem_harness.prompts import load_prompts
from llem_harness.warmup import run_warmup
from llem_persistence import StagingRepository, write_timeseries
from llem_schema import (
    DeviceInfo,
    ExperimentConfig,
    InferenceBackend,
    ModelInfo,
    RawProcessResult,
    Request,
    RequestRecord,
    RequestTiming,
    WorkerContext,
    measurement_config_hash,
)

__all__ = ["measure_process", "metered_gpus", "shard"]

logger = logging.getLogger(__name__)

Barrier = Callable[[], None]


def shard(n: int, num_processes: int, process_index: int) -> range:
    """The contiguous block of prompt indices process ``process_index`` runs."""
    return range(process_index * n // num_processes, (process_index + 1) * n // num_processes)


def metered_gpus(config: ExperimentConfig, info: ModelInfo) -> str | list[int | str]:
    """The GPUs to meter: ``energy.devices`` where the config names them, else the GPUs the
    backend placed the model on, by UUID (none for a model on the CPU)."""
    devices = config.energy.devices
    if devices is None:
        return list(info.device_uuids)
    return devices


def measure_process(
    config: ExperimentConfig,
    experiment_id: str,
    *,
    backend: InferenceBackend,
    results_dir: Path,
    context: WorkerContext,
    stages: Stages,
    barrier: Barrier = lambda: None,
) -> RawProcessResult:
    """Measure this process's share of the requests and stage its raw result.

    ``barrier`` is called once everyone has warmed up, right before the energy window opens,
    so that the windows of all processes overlap.
    """
    staging = StagingRepository(results_dir)
    meter: EnergyMeter | None = None
    try:
        with stages.stage(f"loading {config.model}"):
            info = backend.load(config, context)
        meter = EnergyMeter.create(config.energy, gpus=metered_gpus(config, info))
        if config.baseline.enabled and meter.device_ids:
            with stages.stage(f"baseline idle power ({config.baseline.duration_s:g} s)"):
                baselines = meter.measure_baseline(config.baseline)
            for device_id, baseline in baselines.items():
                stages.note(
                    f"baseline {device_id}: {baseline.method}"
                    + (f", {baseline.power_w:.1f} W" if baseline.power_w is not None else "")
                )
        prompts = load_prompts(config, count_tokens=backend.count_tokens)
        mine = shard(len(prompts), context.num_processes, context.process_index)
        requests = [Request(index=i, prompt=prompts[i]) for i in mine]
        warm = config.warmup
        with stages.stage(
            "warmup", total=warm.max_count if warm.until_converged else warm.count
        ) as advance:
            warmup = run_warmup(warm, requests, backend.warmup, advance)
        barrier()
        with stages.stage("inference", total=len(requests)) as advance:
            backend.synchronize()
            window = meter.start()
            timings = []
            for timing in backend.run(requests):
                timings.append(timing)
                advance(1)
            backend.synchronize()
            reading = window.stop()
        records = _records(requests, timings, backend.name)
        timeseries = staging.timeseries_path(experiment_id, context.process_index)
        has_samples = write_timeseries(reading.samples, timeseries)
        memory = backend.peak_memory()
        raw = RawProcessResult(
            experiment_id=experiment_id,
            measurement_config_hash=measurement_config_hash(config),
            model=config.model,
            backend=backend.name,
            backend_version=backend.version,
            process_index=context.process_index,
            num_processes=context.num_processes,
            hostname=socket.gethostname(),
            model_info=info,
            devices=meter.devices or [_cpu_device(info.device)],
            start_time=reading.start_time,
            end_time=reading.end_time,
            duration_s=reading.duration_s,
            requests=records,
            energy=reading.energy,
            sample_count=reading.sample_count,
            peak_memory_mb=None if memory is None else memory.mb,
            peak_memory_source=None if memory is None else memory.source,
            flops=backend.estimate_flops(records),
            warmup=warmup,
            throttle=reading.throttle,
            measurement_warnings=reading.warnings_with(prompt_count=config.n),
            timeseries=timeseries.name if has_samples else None,
        )
        staging.save_raw(experiment_id, raw)
        return raw
    finally:
        backend.unload()
        if meter is not None:
            meter.close()


def _records(
    requests: Sequence[Request], timings: Sequence[RequestTiming], backend: str
) -> list[RequestRecord]:
    """The timings as records, in request order; every request exactly once."""
    by_index = {timing.request_index: timing for timing in timings}
    expected = [request.index for request in requests]
    if len(by_index) != len(timings) or sorted(by_index) != expected:
        returned = sorted(timing.request_index for timing in timings)
        raise HarnessError(
            f"backend {backend!r} returned timings for requests {_span(returned)} but was "
            f"given {_span(expected)}: each request needs exactly one timing"
        )
    return [RequestRecord.from_timing(by_index[index]) for index in expected]


def _span(indices: Sequence[int]) -> str:
    if not indices:
        return "none"
    if list(indices) == list(range(indices[0], indices[0] + len(indices))):
        return f"{indices[0]}..{indices[-1]}"
    return ", ".join(map(str, indices[:8])) + (", ..." if len(indices) > 8 else "")


def _cpu_device(device: str) -> DeviceInfo:
    host = socket.gethostname()
    return DeviceInfo(kind="cpu", index=0, uuid=f"cpu-{host}", name=cpu_model() or device)

"""What each process does (step 3 of a run): environment, baseline, model load, warmup, the
energy window around inference, and its raw result staged atomically."""

import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from llem.harness.backends import create_backend
from llem.harness.progress import Reporter
from llem.harness.warmup import run_warmup
from llem_energy import EnergyMeter
from llem_persistence import StagingRepository, write_timeseries
from llem_schema import (
    DeviceInfo,
    ExperimentConfig,
    RawProcessResult,
    RequestRecord,
    measurement_config_hash,
)

__all__ = ["measure_process", "shard"]

logger = logging.getLogger(__name__)


def shard(n: int, num_processes: int, process_index: int) -> range:
    """The contiguous block of prompt indices process ``process_index`` runs."""
    return range(process_index * n // num_processes, (process_index + 1) * n // num_processes)


def _batches(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _quiet_transformers() -> None:
    """Our progress reporting replaces transformers' own bars (weights loading)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _cuda_device(local_rank: int) -> int | None:
    import torch

    return local_rank if torch.cuda.is_available() else None


def measure_process(
    config: ExperimentConfig,
    experiment_id: str,
    *,
    results_dir: Path,
    process_index: int = 0,
    num_processes: int = 1,
    local_rank: int = 0,
    reporter: Reporter,
    barrier: Callable[[], None] = lambda: None,
) -> RawProcessResult:
    """Measure this process's share of the prompts and stage its raw result.

    ``barrier`` is called once everyone has warmed up, right before the energy window opens,
    so that the windows of all processes overlap.
    """
    staging = StagingRepository(results_dir)
    _quiet_transformers()
    device_index = _cuda_device(local_rank)
    backend = create_backend(config.backend)
    meter = EnergyMeter.create(
        config.energy, cuda_devices=None if device_index is None else [device_index]
    )
    try:
        if config.baseline.enabled and meter.device_ids:
            with reporter.stage(f"baseline idle power ({config.baseline.duration_s:g} s)"):
                baselines = meter.measure_baseline(config.baseline)
            for device_id, baseline in baselines.items():
                reporter.note(
                    f"baseline {device_id}: {baseline.method}"
                    + (f", {baseline.power_w:.1f} W" if baseline.power_w is not None else "")
                )
        with reporter.stage(f"loading {config.model}"):
            info = backend.load(config, device_index=device_index)
        prompts = _load_prompts(config, backend)
        mine = shard(len(prompts), num_processes, process_index)
        batches = _batches([prompts[i] for i in mine], config.pytorch.batch_size)
        warm = config.warmup
        with reporter.stage(
            "warmup", total=warm.max_count if warm.until_converged else warm.count
        ) as advance:
            warmup = run_warmup(warm, batches, backend.warmup, advance)
        barrier()
        records: list[RequestRecord] = []
        with reporter.stage("inference", total=len(mine)) as advance:
            backend.synchronize()
            window = meter.start()
            first = mine.start
            for batch_index, batch in enumerate(batches):
                timings = backend.run_batch(batch, first_request_index=first)
                records.extend(
                    RequestRecord.from_timing(t, batch_index=batch_index) for t in timings
                )
                first += len(batch)
                advance(len(batch))
            backend.synchronize()
            reading = window.stop()
        timeseries = staging.timeseries_path(experiment_id, process_index)
        has_samples = write_timeseries(reading.samples, timeseries)
        raw = RawProcessResult(
            experiment_id=experiment_id,
            measurement_config_hash=measurement_config_hash(config),
            model=config.model,
            backend=backend.name,
            backend_version=backend.version,
            process_index=process_index,
            num_processes=num_processes,
            hostname=socket.gethostname(),
            devices=meter.devices or [_cpu_device(info.device)],
            start_time=reading.start_time,
            end_time=reading.end_time,
            duration_s=reading.duration_s,
            requests=records,
            energy=reading.energy,
            sample_count=reading.sample_count,
            peak_memory_mb=backend.peak_memory_mb(),
            peak_memory_source="cuda" if device_index is not None else "rss",
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
        meter.close()


def _load_prompts(config: ExperimentConfig, backend: object) -> list[str]:
    from llem_backend_pytorch import load_prompts

    count_tokens = getattr(backend, "count_tokens", None)
    return load_prompts(config, count_tokens=count_tokens)


def _cpu_device(device: str) -> DeviceInfo:
    from llem_energy import cpu_model

    host = socket.gethostname()
    return DeviceInfo(kind="cpu", index=0, uuid=f"cpu-{host}", name=cpu_model() or device)

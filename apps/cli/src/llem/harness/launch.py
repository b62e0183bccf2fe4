"""Step 2 of a run: one process in-process, or N through torch.distributed's elastic launcher
(what ``torchrun`` uses): ``gloo`` on CPU, ``nccl`` on GPUs."""

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from llem.harness.progress import Reporter, make_reporter
from llem.harness.worker import measure_process
from llem_schema import ExperimentConfig, LlemError

__all__ = ["WorkerFailedError", "run_workers"]

logger = logging.getLogger(__name__)


class WorkerFailedError(LlemError):
    """A worker process died or raised; what finished is staged."""


def run_workers(
    config: ExperimentConfig, experiment_id: str, results_dir: Path, reporter: Reporter
) -> None:
    """Run every process of the experiment; each stages its own raw result."""
    if config.num_processes == 1:
        measure_process(config, experiment_id, results_dir=results_dir, reporter=reporter)
        return
    _launch_elastic(config, experiment_id, results_dir)


def _launch_elastic(config: ExperimentConfig, experiment_id: str, results_dir: Path) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=config.num_processes,
        run_id=f"llem-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    _quiet_launcher_logs()
    try:
        elastic_launch(launch, _elastic_worker)(
            config.model_dump_json(),
            experiment_id,
            str(results_dir),
            logging.getLogger("llem").isEnabledFor(logging.DEBUG),
        )
    except ChildFailedError as exc:
        raise WorkerFailedError(_describe_failure(exc)) from None


def _quiet_launcher_logs() -> None:
    """torch's launcher loggers set their own levels; llem reports failures itself."""
    verbose = logging.getLogger("llem").isEnabledFor(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed", "torch.multiprocessing")):
            logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)


def _describe_failure(exc: Any) -> str:
    rank, failure = min(exc.failures.items())
    code = failure.exitcode
    if code < 0:
        return f"process {rank} was killed by signal {-code}"
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    reason = str(message).strip().splitlines()[-1] if message else ""
    return f"process {rank} exited with code {code}" + (f": {reason}" if reason else "")


def _barrier(dist: Any) -> None:
    dist.barrier()


def _elastic_worker(config_json: str, experiment_id: str, results_dir: str, verbose: bool) -> int:
    """Entry point of each launched process (imported by name in the child)."""
    import torch
    import torch.distributed as dist

    from llem.logs import configure_logging

    configure_logging(verbose=verbose)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # NCCL collectives (the barrier) use this device
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        rank = dist.get_rank()
        config = ExperimentConfig.model_validate_json(config_json)
        measure_process(
            config,
            experiment_id,
            results_dir=Path(results_dir),
            process_index=rank,
            num_processes=dist.get_world_size(),
            local_rank=local_rank,
            reporter=make_reporter(rank=rank),
            barrier=lambda: _barrier(dist),
        )
        return rank
    finally:
        dist.destroy_process_group()

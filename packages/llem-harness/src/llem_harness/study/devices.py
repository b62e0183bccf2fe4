"""The GPUs a parallel study runs on, one experiment per GPU at a time: those named, else
every GPU NVML sees (those CUDA_VISIBLE_DEVICES leaves visible, when it is set)."""

import logging
import os
from collections.abc import Sequence

from llem_harness.errors import UsageError
from llem_schema import StudyPlan

__all__ = ["check_parallel_plan", "visible_gpus"]

logger = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """Every GPU NVML sees that CUDA_VISIBLE_DEVICES leaves visible (all, when it is unset),
    as NVML indices; empty where there is no GPU or no NVML."""
    from llem_energy import EnergyError, NvmlSession, resolve_gpu_indices

    try:
        with NvmlSession.open() as session:
            indices = resolve_gpu_indices(session, os.environ.get("CUDA_VISIBLE_DEVICES"))
    except EnergyError as exc:
        logger.debug("no GPUs visible: %s", exc)
        return []
    return [str(index) for index in indices]


def check_parallel_plan(plan: StudyPlan, devices: Sequence[str | None]) -> None:
    """Refuse (exit 2) points that cannot run side by side, one per device.

    Experiments running at the same time on one host share its CPU packages: each would
    count the others' CPU (RAPL) energy as its own. And a run pinned to one GPU cannot
    launch processes for several.
    """
    if len(devices) < 2:
        return
    for point in plan.points:
        config = point.config
        if config.energy.source in ("auto", "rapl"):
            raise UsageError(
                f"running experiments side by side on one host, each would count the others' "
                f"CPU (RAPL) energy: point {point.index} has energy.source "
                f"{config.energy.source!r}; set energy.source to nvml (or none) in the study"
            )
        if config.energy.devices is not None:
            raise UsageError(
                f"running experiments side by side, each would meter the GPUs the others use: "
                f"point {point.index} names energy.devices; leave it out (each run meters its "
                "own GPU) or run one experiment at a time"
            )
        if config.num_processes > 1:
            raise UsageError(
                f"a parallel study pins each run to one GPU: point {point.index} has "
                f"num_processes {config.num_processes}; run it one experiment at a time"
            )

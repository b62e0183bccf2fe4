"""The GPUs ``llem study --parallel`` runs on: ``--devices 0,1``, else every GPU NVML sees
(those CUDA_VISIBLE_DEVICES leaves visible, when it is set)."""

import logging
import os
from collections.abc import Sequence

from llem.errors import UsageError
from llem_schema import StudyPlan

__all__ = ["check_parallel_plan", "parallel_devices", "parse_devices"]

logger = logging.getLogger(__name__)


def parse_devices(text: str) -> list[str]:
    """``"0,1"`` -> ``["0", "1"]``: CUDA_VISIBLE_DEVICES entries (indices or GPU UUIDs)."""
    devices = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not device for device in devices):
        raise UsageError(f"--devices {text!r}: give device indices or UUIDs, such as 0,1")
    if any(" " in device for device in devices):
        raise UsageError(f"--devices {text!r}: separate devices with commas only")
    duplicates = sorted({device for device in devices if devices.count(device) > 1})
    if duplicates:
        raise UsageError(f"--devices {text!r}: device {duplicates[0]} is given twice")
    return devices


def parallel_devices(devices: str | None) -> list[str]:
    """The devices to run on, one experiment each at a time; a :class:`UsageError` (exit 2)
    when none is given and NVML finds no GPU."""
    if devices is not None:
        return parse_devices(devices)
    found = _nvml_devices()
    if not found:
        raise UsageError("--parallel needs GPUs (none found); give --devices to choose them")
    return found


def _nvml_devices() -> list[str]:
    from llem_energy import EnergyError, NvmlSession, resolve_gpu_indices

    try:
        with NvmlSession.open() as session:
            indices = resolve_gpu_indices(session, os.environ.get("CUDA_VISIBLE_DEVICES"))
    except EnergyError as exc:
        logger.debug("no GPUs for --parallel: %s", exc)
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
                f"--parallel runs experiments side by side on one host, so each would count "
                f"the others' CPU (RAPL) energy: point {point.index} has energy.source "
                f"{config.energy.source!r}; set energy.source to nvml (or none) in the study"
            )
        if config.num_processes > 1:
            raise UsageError(
                f"--parallel pins each run to one GPU: point {point.index} has num_processes "
                f"{config.num_processes}; run it without --parallel"
            )

"""A snapshot of the machine and software a measurement ran on: cheap, and never fatal.

Package versions are read from installed metadata (``importlib.metadata``), never by
importing the packages, so torch is not loaded to learn its version. Anything that cannot
be determined is left None.
"""

import logging
import os
import platform
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from llem_energy.errors import NvmlError
from llem_energy.nvml import NvmlSession
from llem_schema import EnvironmentSnapshot, GpuInfo

__all__ = [
    "DEFAULT_PACKAGES",
    "collect_environment",
    "cpu_model",
    "in_container",
    "package_versions",
]

logger = logging.getLogger(__name__)

DEFAULT_PACKAGES: Final[tuple[str, ...]] = (
    "llem",
    "llem-schema",
    "llem-energy",
    "llem-persistence",
    "llem-harness",
    "llem-backend-pytorch",
    "torch",
    "transformers",
    "accelerate",
    "tokenizers",
    "safetensors",
    "flash-attn",
    "triton",
    "vllm",
    "tensorrt-llm",
    "nvidia-ml-py",
    "numpy",
    "pydantic",
    "pyarrow",
)
"""Distributions whose versions change what llem measures (a run adds its backend's own)."""

_CONTAINER_MARKERS: Final = ("docker", "kubepods", "containerd", "libpod", "lxc")


def package_versions(names: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names); absent ones are left out."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` says, else None."""
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() in {"model name", "Model", "cpu model"} and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def in_container(root: Path = Path("/"), environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a container (Docker, Podman, Kubernetes, LXC)."""
    env = os.environ if environ is None else environ
    if env.get("container") or env.get("KUBERNETES_SERVICE_HOST"):
        return True
    if (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists():
        return True
    try:
        cgroup = (root / "proc" / "1" / "cgroup").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(marker in cgroup for marker in _CONTAINER_MARKERS)


def _gpus(session: NvmlSession, gpu_indices: Sequence[int] | None) -> list[GpuInfo]:
    indices = gpu_indices if gpu_indices is not None else range(session.device_count())
    return [session.device(index).info() for index in indices]


def collect_environment(
    *,
    session: NvmlSession | None = None,
    nvml: Any = None,
    use_nvml: bool = True,
    gpu_indices: Sequence[int] | None = None,
    packages: Iterable[str] = DEFAULT_PACKAGES,
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
) -> EnvironmentSnapshot:
    """Snapshot this machine; GPUs come from ``session`` or from NVML opened here.

    ``gpu_indices`` limits the GPUs described (default: every GPU NVML sees). Without NVML
    (or with ``use_nvml=False``) the snapshot has no GPUs and no driver version; it is never
    an error.
    """
    driver = cuda = None
    gpus: list[GpuInfo] = []
    own: NvmlSession | None = None
    if session is None and use_nvml:
        try:
            session = own = NvmlSession.open(nvml)
        except NvmlError as exc:
            logger.info("environment snapshot without GPUs: %s", exc)
    if session is not None:
        try:
            driver, cuda = session.driver_version(), session.cuda_version()
            gpus = _gpus(session, gpu_indices)
        except NvmlError as exc:
            logger.warning("environment snapshot without GPUs: %s", exc)
        finally:
            if own is not None:
                own.close()
    return EnvironmentSnapshot(
        collected_at=datetime.now(UTC),
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python_version=platform.python_version(),
        cpu_model=cpu_model(root / "proc" / "cpuinfo"),
        cpu_count=os.cpu_count(),
        in_container=in_container(root, environ),
        driver_version=driver,
        cuda_version=cuda,
        gpus=gpus,
        package_versions=package_versions(packages),
    )

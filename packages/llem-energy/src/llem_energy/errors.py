"""Errors raised by llem_energy, all rooted in :class:`llem_schema.LlemError`.

Vendor errors never escape this package: an NVML error code is translated into one of the
classes below at the boundary (``llem_energy.nvml``), and ``str(error)`` is one line that
says what failed and what to do.
"""

from llem_schema import LlemError

__all__ = [
    "EnergyError",
    "EnergySourceUnavailableError",
    "GpuLostError",
    "NvmlError",
    "NvmlNotSupportedError",
    "NvmlPermissionError",
    "NvmlUnavailableError",
    "RaplPermissionError",
    "RaplUnavailableError",
]


class EnergyError(LlemError):
    """An energy source could not be opened or read."""


class EnergySourceUnavailableError(EnergyError):
    """The energy source the configuration asked for explicitly is not there."""


class NvmlError(EnergyError):
    """An NVML call failed; ``code`` is the NVML return code (``NVML_ERROR_*``)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NvmlUnavailableError(NvmlError):
    """NVML cannot be used at all: no library, no driver, or a driver/library mismatch."""


class NvmlNotSupportedError(NvmlError):
    """The device or driver does not offer this query (an older GPU, a VM, a MIG instance)."""


class NvmlPermissionError(NvmlError):
    """The driver refused the query for lack of permission."""


class GpuLostError(NvmlError):
    """The GPU fell off the bus or needs a reset; nothing it reports can be trusted."""


class RaplUnavailableError(EnergyError):
    """RAPL energy counters cannot be read: absent (a VM, a non-Intel/AMD CPU) or not permitted."""


class RaplPermissionError(RaplUnavailableError):
    """RAPL counters are there but this user may not read them (root only since Linux 5.10)."""

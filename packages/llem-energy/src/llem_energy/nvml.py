"""The NVML boundary: opening NVML, one handle per GPU, and every NVML call llem makes.

``pynvml`` (nvidia-ml-py) is imported lazily, and any object with the same functions can be
passed instead (``llem_energy.testing.FakeNvml``). Every ``NVMLError`` is translated here,
by its code, into a typed :mod:`llem_energy.errors` class whose message says what to do; no
vendor exception leaves this module.
"""

import logging
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import Any, Final, Self

from llem_energy.errors import (
    EnergyError,
    GpuLostError,
    NvmlError,
    NvmlNotSupportedError,
    NvmlPermissionError,
    NvmlUnavailableError,
)
from llem_schema import DeviceInfo, DeviceState, GpuInfo, PowerSample
from llem_schema.measurement import PowerReading, PowerScope

__all__ = ["NvmlDevice", "NvmlSession", "load_nvml", "resolve_gpu_indices", "translate_nvml_error"]

logger = logging.getLogger(__name__)

_MIB: Final = 1024 * 1024

# NVML return code name -> (llem error class, what the user can do). Codes are looked up by
# name on the module in use, so the table follows whatever values nvidia-ml-py defines.
_EXCEPTION_MAP: Final[dict[str, tuple[type[NvmlError], str]]] = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": (
        NvmlUnavailableError,
        "no NVIDIA driver library (libnvidia-ml) on this machine: install the NVIDIA driver, "
        "or set energy.source to 'rapl' or 'none'",
    ),
    "NVML_ERROR_DRIVER_NOT_LOADED": (
        NvmlUnavailableError,
        "the NVIDIA kernel driver is not loaded: check that `nvidia-smi` works, "
        "or set energy.source to 'rapl' or 'none'",
    ),
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": (
        NvmlUnavailableError,
        "the NVML library and the kernel driver differ in version: reboot or reinstall the driver",
    ),
    "NVML_ERROR_NOT_SUPPORTED": (
        NvmlNotSupportedError,
        "this GPU or driver does not offer it (older GPUs, VMs and MIG instances lack some queries)",
    ),
    "NVML_ERROR_FUNCTION_NOT_FOUND": (
        NvmlNotSupportedError,
        "the installed NVIDIA driver is too old for this query: upgrade the driver",
    ),
    "NVML_ERROR_NO_PERMISSION": (
        NvmlPermissionError,
        "the driver refused it: run with permission to query the GPU, or ask the administrator",
    ),
    "NVML_ERROR_GPU_IS_LOST": (
        GpuLostError,
        "the GPU fell off the bus: check `nvidia-smi` and the kernel log, then reset the GPU",
    ),
    "NVML_ERROR_RESET_REQUIRED": (
        GpuLostError,
        "the GPU needs a reset before it can be used again (nvidia-smi --gpu-reset)",
    ),
    "NVML_ERROR_INVALID_ARGUMENT": (
        NvmlError,
        "check the GPU index: `nvidia-smi -L` lists the devices NVML sees",
    ),
    "NVML_ERROR_UNINITIALIZED": (
        NvmlError,
        "NVML was used before it was initialised or after it was shut down (a bug in llem; "
        "please report it)",
    ),
}

_EVENT_FIELDS: Final = {
    "power_cap": "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP",
    "sw_thermal": "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN",
    "hw_thermal": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
    "hw_power_brake": "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN",
}
"""NVML's cumulative clock-event durations (ns since the driver loaded), by
ThermalThrottleInfo field name."""

_VALUE_FIELDS: Final = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}


def load_nvml() -> Any:
    """Import and return the ``pynvml`` module (nvidia-ml-py); imported only when used."""
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a declared dependency
        raise NvmlUnavailableError(
            f"cannot import pynvml ({exc}): install nvidia-ml-py (pip install nvidia-ml-py)"
        ) from None
    return pynvml


def _code_name(nvml: Any, code: int) -> str | None:
    for name in dir(nvml):
        if name.startswith("NVML_ERROR_") and getattr(nvml, name) == code:
            return name
    return None


def translate_nvml_error(nvml: Any, exc: BaseException, action: str) -> NvmlError:
    """Turn ``exc`` (an ``NVMLError``) raised while doing ``action`` into a typed llem error."""
    code = getattr(exc, "value", None)
    name = _code_name(nvml, code) if isinstance(code, int) else None
    error_class, hint = _EXCEPTION_MAP.get(name or "", (NvmlError, "see `nvidia-smi -q`"))
    try:
        text = str(exc)
    except Exception:  # pragma: no cover - NVMLError.__str__ may itself call into NVML
        text = "unknown error"
    label = f"{name}, code {code}" if name else f"code {code}"
    return error_class(f"NVML {action} failed: {text} ({label}); {hint}", code=code)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSession:
    """NVML, initialised once for this process; close it (or use ``with``) to shut it down."""

    def __init__(self, nvml: Any, *, simulated: int | None = None) -> None:
        self.nvml = nvml
        self.simulated = simulated
        """How many GPUs are simulated (``LLEM_SIMULATED_GPUS``); None for real ones."""
        self._open = True

    @classmethod
    def open(cls, nvml: Any = None) -> Self:
        """Initialise NVML: ``nvml``, else the simulated GPUs ``LLEM_SIMULATED_GPUS`` asks
        for (see :mod:`llem_energy.simulated`), else the real ``pynvml``."""
        from llem_energy.simulated import simulated_gpu_count, simulated_nvml

        simulated = simulated_gpu_count() if nvml is None else None
        if simulated is not None:
            module = simulated_nvml(simulated)
        else:
            module = nvml if nvml is not None else load_nvml()
        session = cls(module, simulated=simulated)
        session.call("initialisation (nvmlInit)", module.nvmlInit)
        return session

    def call(self, action: str, function: Callable[..., Any], *args: Any) -> Any:
        """Call an NVML function, translating its errors (``action`` names it in messages)."""
        try:
            return function(*args)
        except self.nvml.NVMLError as exc:
            raise translate_nvml_error(self.nvml, exc, action) from None

    def device_count(self) -> int:
        """GPUs NVML sees on this host (all of them, whatever CUDA_VISIBLE_DEVICES says)."""
        return int(self.call("device count", self.nvml.nvmlDeviceGetCount))

    def device(self, index: int) -> "NvmlDevice":
        """The GPU at NVML index ``index``, with its capabilities probed."""
        return NvmlDevice(self, index)

    def device_by_uuid(self, uuid: str) -> "NvmlDevice":
        """The GPU whose NVML UUID is ``uuid`` (``GPU-...``), with its capabilities probed.

        The UUID names one physical GPU whatever the CUDA and NVML orders are; one that no
        GPU has is an :class:`EnergyError` naming it.
        """
        nvml = self.nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_NOT_FOUND", object()):
                raise EnergyError(
                    f"no GPU with UUID {uuid} on this host (`nvidia-smi -L` lists them)"
                ) from None
            raise translate_nvml_error(nvml, exc, f"handle of GPU {uuid}") from None
        index = int(self.call(f"index of GPU {uuid}", nvml.nvmlDeviceGetIndex, handle))
        return NvmlDevice(self, index)

    def driver_version(self) -> str | None:
        """NVIDIA driver version, or None where NVML cannot say."""
        try:
            return _text(self.call("driver version", self.nvml.nvmlSystemGetDriverVersion))
        except NvmlError as exc:
            logger.debug("no driver version: %s", exc)
            return None

    def cuda_version(self) -> str | None:
        """Highest CUDA version the driver supports, e.g. '12.4'; None where NVML cannot say."""
        try:
            version = int(self.call("CUDA version", self.nvml.nvmlSystemGetCudaDriverVersion))
        except NvmlError as exc:
            logger.debug("no CUDA version: %s", exc)
            return None
        return f"{version // 1000}.{version % 1000 // 10}"

    def close(self) -> None:
        """Shut NVML down; calling it twice is harmless."""
        if self._open:
            self._open = False
            try:
                self.call("shutdown (nvmlShutdown)", self.nvml.nvmlShutdown)
            except NvmlError as exc:
                logger.warning("%s", exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class NvmlDevice:
    """One GPU: its identity, what it can report, and the reads the sampler makes.

    Capabilities are probed once when the device is opened, so a query the GPU does not
    offer (``NVML_ERROR_NOT_SUPPORTED``) is never retried on every sample.
    """

    def __init__(self, session: NvmlSession, index: int) -> None:
        self._session = session
        nvml = session.nvml
        self._nvml = nvml
        self.index = index
        self.handle = session.call(f"handle of GPU {index}", nvml.nvmlDeviceGetHandleByIndex, index)
        self.uuid = _text(session.call(f"UUID of GPU {index}", nvml.nvmlDeviceGetUUID, self.handle))
        self.name = _text(session.call(f"name of GPU {index}", nvml.nvmlDeviceGetName, self.handle))
        self.has_energy_counter = self._supported(self.energy_mj)
        self.power_scope: PowerScope = "gpu"
        """Whose power the instant reading is: the GPU's, or the whole module's where the
        GPU's alone cannot be read (a Grace Hopper superchip)."""
        self.has_instant_power = self._supported(self._instant_power_w)
        if not self.has_instant_power:
            self.power_scope = "module"
            self.has_instant_power = self._supported(self._instant_power_w)
            if not self.has_instant_power:
                self.power_scope = "gpu"
        self.has_averaged_power = self._supported(self._averaged_power_w)
        self.has_temperature = self._supported(self._temperature_c)
        self.has_memory = self._supported(self._memory_used_mb)
        self.has_utilization = self._supported(self._utilization_pct)
        self.has_event_counters = all(
            hasattr(nvml, name) for name in _EVENT_FIELDS.values()
        ) and self._supported(self._clock_event_ns)
        self._clock_reasons: Callable[[Any], Any] | None = None
        for name in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            function = getattr(nvml, name, None)
            if function is not None and self._supported(_bind(function, self.handle)):
                self._clock_reasons = function
                break

    def _supported(self, probe: Callable[[], object]) -> bool:
        """Whether a reading works on this GPU. Any refusal but a lost GPU means no: a
        driver that does not know a field or a power scope answers INVALID_ARGUMENT, and an
        optional reading must not stop the GPU being metered."""
        try:
            self._session.call(f"probe of GPU {self.index}", probe)
        except GpuLostError:
            raise
        except NvmlError as exc:
            logger.debug("GPU %d: %s", self.index, exc)
            return False
        return True

    @property
    def has_clock_reasons(self) -> bool:
        """Whether clock-event (throttle) reasons can be read."""
        return self._clock_reasons is not None

    @property
    def has_power(self) -> bool:
        """Whether any power reading (instant or averaged) is available."""
        return self.has_instant_power or self.has_averaged_power

    def _call(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        return self._session.call(f"{what} of GPU {self.index} ({self.uuid})", function, *args)

    def energy_mj(self) -> int:
        """The cumulative energy counter, mJ since the driver was loaded (Volta and newer)."""
        nvml = self._nvml
        return int(
            self._call("energy counter", nvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        )

    def _instant_power_w(self) -> float:
        nvml = self._nvml
        scope = nvml.NVML_POWER_SCOPE_MODULE if self.power_scope == "module" else 0
        values = self._call(
            "instant power",
            nvml.nvmlDeviceGetFieldValues,
            self.handle,
            [(nvml.NVML_FI_DEV_POWER_INSTANT, scope)],  # scope 0: the GPU
        )
        value = values[0]
        if value.nvmlReturn != nvml.NVML_SUCCESS:
            raise translate_nvml_error(
                nvml, nvml.NVMLError(value.nvmlReturn), f"instant power of GPU {self.index}"
            )
        field = _VALUE_FIELDS.get(int(value.valueType), "uiVal")
        return float(getattr(value.value, field)) / 1000.0

    def _clock_event_ns(self) -> dict[str, int]:
        nvml = self._nvml
        ids = [getattr(nvml, name) for name in _EVENT_FIELDS.values()]
        values = self._call(
            "clock-event durations", nvml.nvmlDeviceGetFieldValues, self.handle, ids
        )
        found: dict[str, int] = {}
        for kind, value in zip(_EVENT_FIELDS, values, strict=True):
            if value.nvmlReturn != nvml.NVML_SUCCESS:
                raise translate_nvml_error(
                    nvml,
                    nvml.NVMLError(value.nvmlReturn),
                    f"clock-event durations of GPU {self.index}",
                )
            field = _VALUE_FIELDS.get(int(value.valueType), "ullVal")
            found[kind] = int(getattr(value.value, field))
        return found

    def clock_event_ns(self) -> dict[str, int] | None:
        """NVML's cumulative time in each clock-event reason (power cap, thermal slowdowns,
        power brake), ns since the driver loaded; None where the driver does not count."""
        if not self.has_event_counters:
            return None
        found: dict[str, int] | None = self._optional("clock-event durations", self._clock_event_ns)
        return found

    def _averaged_power_w(self) -> float:
        nvml = self._nvml
        return float(self._call("power", nvml.nvmlDeviceGetPowerUsage, self.handle)) / 1000.0

    def _temperature_c(self) -> float:
        nvml = self._nvml
        return float(
            self._call(
                "temperature", nvml.nvmlDeviceGetTemperature, self.handle, nvml.NVML_TEMPERATURE_GPU
            )
        )

    def _memory_used_mb(self) -> float:
        nvml = self._nvml
        return float(self._call("memory", nvml.nvmlDeviceGetMemoryInfo, self.handle).used) / _MIB

    def _utilization_pct(self) -> float:
        nvml = self._nvml
        return float(self._call("utilisation", nvml.nvmlDeviceGetUtilizationRates, self.handle).gpu)

    @property
    def power_reading(self) -> PowerReading | None:
        """What :meth:`power_w` reads: ``instant``, ``averaged`` (NVML's 1-second average on
        Ampere and newer), or None without either."""
        if self.has_instant_power:
            return "instant"
        return "averaged" if self.has_averaged_power else None

    def mig_enabled(self) -> bool | None:
        """Whether MIG mode is on; None where NVML cannot say (not MIG-capable)."""
        return self._mig_enabled()

    def temperature_c(self) -> float | None:
        """The GPU's temperature now, deg C; None where NVML cannot say."""
        return self._optional("temperature", self._temperature_c) if self.has_temperature else None

    def power_w(self) -> float | None:
        """Instant power where the GPU offers it, else its averaged power, W; None without either."""
        if self.has_instant_power:
            return self._instant_power_w()
        if self.has_averaged_power:
            return self._averaged_power_w()
        return None

    def clock_event_reasons(self) -> int | None:
        """The clock-event (throttle) reasons bitmask now; None where the driver cannot say."""
        if self._clock_reasons is None:
            return None
        return int(self._call("clock-event reasons", self._clock_reasons, self.handle))

    def read_sample(self, timestamp_s: float) -> PowerSample:
        """One timeseries row for this GPU, stamped ``timestamp_s``; raises :class:`NvmlError`."""
        return PowerSample(
            timestamp_s=timestamp_s,
            gpu_index=self.index,
            gpu_power_w=self.power_w(),
            gpu_temperature_c=self._temperature_c() if self.has_temperature else None,
            gpu_memory_used_mb=self._memory_used_mb() if self.has_memory else None,
            gpu_utilization_pct=self._utilization_pct() if self.has_utilization else None,
            clock_event_reasons=self.clock_event_reasons(),
        )

    def compute_pids(self) -> list[int] | None:
        """Processes with a compute context on this GPU (NVML's PIDs: the host's, inside a
        container); None where NVML cannot say."""
        nvml = self._nvml
        found = self._optional(
            "compute processes",
            lambda: self._call(
                "compute processes", nvml.nvmlDeviceGetComputeRunningProcesses, self.handle
            ),
        )
        return None if found is None else sorted(int(p.pid) for p in found)

    def state(self, own_pids: Collection[int] | None) -> DeviceState:
        """This GPU now: clocks, P-state, power limits, temperature and compute processes,
        those not in ``own_pids`` (this run's processes) named foreign; ``None``: which are
        this run's cannot be told (foreign_pids is None)."""
        nvml = self._nvml
        handle = self.handle

        def read(what: str, function: Callable[..., Any], *args: Any) -> Any:
            return self._optional(what, lambda: self._call(what, function, handle, *args))

        sm = read("SM clock", nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_SM)
        memory = read("memory clock", nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_MEM)
        limit = read("power limit", nvml.nvmlDeviceGetPowerManagementLimit)
        default = read("default power limit", nvml.nvmlDeviceGetPowerManagementDefaultLimit)
        pids = self.compute_pids()
        return DeviceState(
            uuid=self.uuid,
            sm_clock_mhz=None if sm is None else float(sm),
            memory_clock_mhz=None if memory is None else float(memory),
            pstate=read("P-state", nvml.nvmlDeviceGetPerformanceState),
            power_limit_w=None if limit is None else float(limit) / 1000.0,
            default_power_limit_w=None if default is None else float(default) / 1000.0,
            temperature_c=self._optional("temperature", self._temperature_c)
            if self.has_temperature
            else None,
            compute_pids=pids,
            foreign_pids=None
            if pids is None or own_pids is None
            else [p for p in pids if p not in own_pids],
        )

    def device_info(self) -> DeviceInfo:
        """This GPU as a result records it."""
        return DeviceInfo(
            kind="gpu",
            index=self.index,
            uuid=self.uuid,
            name=self.name,
            mig=bool(self._mig_enabled()),
        )

    def _optional(self, what: str, function: Callable[[], Any]) -> Any:
        try:
            return function()
        except NvmlError as exc:
            logger.debug("GPU %d: no %s: %s", self.index, what, exc)
            return None

    def _mig_enabled(self) -> bool | None:
        nvml = self._nvml
        modes = self._optional(
            "MIG mode", lambda: self._call("MIG mode", nvml.nvmlDeviceGetMigMode, self.handle)
        )
        return None if modes is None else modes[0] == nvml.NVML_DEVICE_MIG_ENABLE

    def persistence_mode(self) -> bool | None:
        """Whether persistence mode is on; None where NVML cannot say."""
        nvml = self._nvml
        mode = self._optional(
            "persistence mode",
            lambda: self._call("persistence mode", nvml.nvmlDeviceGetPersistenceMode, self.handle),
        )
        return None if mode is None else mode == nvml.NVML_FEATURE_ENABLED

    def ecc_enabled(self) -> bool | None:
        """Whether ECC memory is on now; None where the GPU has no ECC or NVML cannot say."""
        nvml = self._nvml
        modes = self._optional(
            "ECC mode", lambda: self._call("ECC mode", nvml.nvmlDeviceGetEccMode, self.handle)
        )
        return None if modes is None else modes[0] == nvml.NVML_FEATURE_ENABLED

    def info(self) -> GpuInfo:
        """This GPU as the environment snapshot records it; unknown fields are None."""
        nvml = self._nvml
        memory = self._optional(
            "memory", lambda: self._call("memory", nvml.nvmlDeviceGetMemoryInfo, self.handle)
        )
        capability = self._optional(
            "compute capability",
            lambda: self._call(
                "compute capability", nvml.nvmlDeviceGetCudaComputeCapability, self.handle
            ),
        )
        limit_mw = self._optional(
            "power limit",
            lambda: self._call("power limit", nvml.nvmlDeviceGetEnforcedPowerLimit, self.handle),
        )
        return GpuInfo(
            index=self.index,
            uuid=self.uuid,
            name=self.name,
            memory_total_mb=None if memory is None else float(memory.total) / _MIB,
            compute_capability=None if capability is None else f"{capability[0]}.{capability[1]}",
            power_limit_w=None if limit_mw is None else float(limit_mw) / 1000.0,
            persistence_mode=self.persistence_mode(),
            ecc_enabled=self.ecc_enabled(),
            mig_enabled=self._mig_enabled(),
        )


def _bind(function: Callable[[Any], Any], handle: Any) -> Callable[[], Any]:
    return lambda: function(handle)


def resolve_gpu_indices(session: NvmlSession, cuda_visible_devices: str | None) -> list[int]:
    """NVML indices of the GPUs a process uses, from a ``CUDA_VISIBLE_DEVICES`` value.

    ``None`` means every GPU; entries are integers (read as NVML indices, which match CUDA's
    when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``) or GPU UUIDs, full or an unambiguous prefix. As in
    CUDA, parsing stops at the first invalid entry; a UUID that matches no GPU is an error.
    """
    count = session.device_count()
    if cuda_visible_devices is None:
        return list(range(count))
    uuids: list[str] | None = None
    indices: list[int] = []
    for raw in cuda_visible_devices.split(","):
        entry = raw.strip()
        if entry.isdigit():
            index = int(entry)
            if index >= count:
                break
            indices.append(index)
        elif entry.startswith("GPU-"):
            if uuids is None:
                uuids = [session.device(i).uuid for i in range(count)]
            matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
            if len(matches) != 1:
                found = "no GPU" if not matches else f"{len(matches)} GPUs"
                raise EnergyError(
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} matches {found}; "
                    "`nvidia-smi -L` lists the GPU UUIDs"
                )
            indices.append(matches[0])
        elif entry.startswith("MIG-"):
            raise NvmlNotSupportedError(
                f"CUDA_VISIBLE_DEVICES entry {entry!r} is a MIG instance: NVML has no energy "
                "counter per MIG instance; measure the whole GPU by passing gpu_indices"
            )
        else:
            break
    return _unique(indices)


def _unique(indices: Sequence[int]) -> list[int]:
    seen: list[int] = []
    for index in indices:
        if index not in seen:
            seen.append(index)
    return seen

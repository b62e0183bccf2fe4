"""Fakes at the hardware boundary, for llem's tests and for anyone testing code built on
llem_energy without a GPU: a fake ``pynvml`` module and a fake RAPL sysfs tree.

:class:`FakeNvml` follows the real module: the same function names and signatures, the
real constants, real ``NVMLError`` subclasses raised with real codes, real ctypes structures
where pynvml returns them, NVML's init/shutdown reference count. Its GPUs are
:class:`FakeGpu` physics: power that moves (a sine around a mean), a cumulative energy
counter that is exactly its integral (optionally stepped, or miscalibrated), a temperature
that rises, and switches for what older GPUs and drivers lack.
"""

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pynvml

__all__ = [
    "FakeGpu",
    "FakeHandle",
    "FakeNvml",
    "ManualClock",
    "write_rapl_zone",
]

_MIB: Final = 1024 * 1024
COUNTER_OFFSET_MJ: Final = 5_000_000_000
"""Where every fake energy counter starts (real ones count from driver load)."""


_EVENT_FIELD_IDS: Final = frozenset(
    {
        pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP,
        pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN,
        pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN,
        pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN,
    }
)


class ManualClock:
    """A clock that moves only when told to: ``clock()`` reads it, ``sleep`` advances it."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` (a drop-in for ``time.sleep``)."""
        self.now_s += seconds


@dataclass
class FakeGpu:
    """One simulated GPU; every number is a plain attribute a test may change."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory_total_mb: float = 81559.0
    memory_used_mb: float = 1024.0
    compute_capability: tuple[int, int] = (9, 0)
    power_limit_w: float = 700.0
    power_w: float = 300.0
    """Mean power, W."""
    power_swing_w: float = 50.0
    """Amplitude of the sine around the mean, W."""
    power_period_s: float = 2.0
    temperature_c: float = 40.0
    """Temperature at fake time 0, deg C."""
    temperature_rise_c_per_s: float = 0.1
    utilization_pct: int = 90
    energy_counter: bool = True
    """False: a pre-Volta GPU (NVML_ERROR_NOT_SUPPORTED for total energy)."""
    counter_update_period_s: float = 0.0
    """> 0: the counter only moves at multiples of this period (as real counters do)."""
    counter_scale: float = 1.0
    """The counter reads this multiple of the true energy (a miscalibrated counter)."""
    instant_power: bool = True
    """False: the field value NVML_FI_DEV_POWER_INSTANT reports NOT_SUPPORTED."""
    module_power_only: bool = False
    """True: instant power only for the whole module (NVML_POWER_SCOPE_MODULE), not for the
    GPU alone, as on a Grace Hopper superchip."""
    clock_events_api: bool = True
    """False: a driver older than 535 (no nvmlDeviceGetCurrentClocksEventReasons symbol)."""
    clock_event_reasons: Callable[[float], int] = field(default=lambda t: 0)
    """Reasons bitmask as a function of fake time, s."""
    event_counters: bool = False
    """True: the driver counts time in each clock-event reason (field values 74, 269-271)."""
    event_ns: dict[int, int] = field(default_factory=dict)
    """Field id -> cumulative ns the driver reports for it (0 where not set)."""
    persistence_mode: bool = True
    ecc_enabled: bool | None = True
    """None: a GPU without ECC (NOT_SUPPORTED)."""
    mig_capable: bool = True
    mig_enabled: bool = False
    """MIG mode on (a MIG-capable GPU only)."""
    compute_pids: list[int] = field(default_factory=list)
    """Processes with a compute context on the GPU, as nvmlDeviceGetComputeRunningProcesses
    lists them."""
    sm_clock_mhz: int = 1980
    memory_clock_mhz: int = 2619
    pstate: int = 0
    default_power_limit_w: float = 700.0
    failures: dict[str, int] = field(default_factory=dict)
    """pynvml function name -> NVML_ERROR_* code it raises from now on."""

    def true_power_w(self, t_s: float) -> float:
        """Power at fake time ``t_s``, W."""
        return self.power_w + self.power_swing_w * math.sin(
            2.0 * math.pi * t_s / self.power_period_s
        )

    def true_energy_j(self, t_s: float) -> float:
        """Energy from fake time 0 to ``t_s``, J: the exact integral of :meth:`true_power_w`."""
        omega = 2.0 * math.pi / self.power_period_s
        return self.power_w * t_s + self.power_swing_w / omega * (1.0 - math.cos(omega * t_s))

    def counter_mj(self, t_s: float) -> int:
        """What the energy counter reads at fake time ``t_s``, mJ."""
        if self.counter_update_period_s > 0.0:
            t_s = math.floor(t_s / self.counter_update_period_s) * self.counter_update_period_s
        return COUNTER_OFFSET_MJ + int(self.counter_scale * self.true_energy_j(t_s) * 1000.0)

    def temperature_at_c(self, t_s: float) -> float:
        """Temperature at fake time ``t_s``, deg C."""
        return self.temperature_c + self.temperature_rise_c_per_s * t_s

    def utilization_at_pct(self, t_s: float) -> int:
        """GPU utilisation at fake time ``t_s``, percent."""
        return self.utilization_pct


@dataclass(frozen=True)
class FakeHandle:
    """What nvmlDeviceGetHandleByIndex returns (the real one is an opaque pointer)."""

    index: int


def _copy_real_names(target: object) -> None:
    for name in dir(pynvml):
        if name.startswith(
            ("NVML_", "NVMLError", "nvmlClocksEventReason", "nvmlClocksThrottleReason")
        ):
            setattr(target, name, getattr(pynvml, name))


class FakeNvml:
    """A stand-in for the ``pynvml`` module; pass it as ``nvml=`` to llem_energy.

    Fake time is ``clock() - epoch`` where ``epoch`` is the clock at construction.
    ``library_missing=True`` makes ``nvmlInit`` fail as it does on a machine without the
    driver. ``calls`` counts every function called, by name.
    """

    NVMLError = pynvml.NVMLError

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        clock: Callable[[], float] = time.perf_counter,
        library_missing: bool = False,
        driver_version: str = "550.54.15",
        cuda_version: int = 12040,
    ) -> None:
        _copy_real_names(self)
        self.gpus = list(gpus)
        self.clock = clock
        self.epoch_s = clock()
        self.library_missing = library_missing
        self.driver_version = driver_version
        self.cuda_version = cuda_version
        self.init_count = 0
        self.calls: Counter[str] = Counter()

    @classmethod
    def with_gpus(
        cls, count: int, *, clock: Callable[[], float] = time.perf_counter, **gpu: Any
    ) -> "FakeNvml":
        """``count`` identical GPUs with distinct UUIDs; ``gpu`` sets FakeGpu fields."""
        gpus = [FakeGpu(uuid=f"GPU-fa4e0000-0000-0000-0000-{i:012d}", **gpu) for i in range(count)]
        return cls(gpus, clock=clock)

    def now_s(self) -> float:
        """Fake time, s."""
        return self.clock() - self.epoch_s

    def _raise(self, code: int) -> None:
        raise pynvml.NVMLError(code)

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.init_count <= 0:
            self._raise(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, name: str, handle: FakeHandle) -> FakeGpu:
        self._enter(name)
        if not isinstance(handle, FakeHandle) or not 0 <= handle.index < len(self.gpus):
            self._raise(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if name in gpu.failures:
            self._raise(gpu.failures[name])
        return gpu

    # --- library -------------------------------------------------------------------------
    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self.calls["nvmlInit"] += 1
        if self.library_missing:
            self._raise(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.init_count += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._enter("nvmlShutdown")
        self.init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_version

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:  # noqa: N802
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            self._raise(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeHandle:  # noqa: N802
        self._enter("nvmlDeviceGetHandleByUUID")
        for index, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return FakeHandle(index)
        self._raise(pynvml.NVML_ERROR_NOT_FOUND)
        raise AssertionError("unreachable")

    # --- identity ------------------------------------------------------------------------
    def nvmlDeviceGetIndex(self, handle: FakeHandle) -> int:  # noqa: N802
        self._gpu("nvmlDeviceGetIndex", handle)
        return handle.index

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:  # noqa: N802
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:  # noqa: N802
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:  # noqa: N802
        return self._gpu("nvmlDeviceGetCudaComputeCapability", handle).compute_capability

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:  # noqa: N802
        return int(self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_w * 1000)

    def nvmlDeviceGetPersistenceMode(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetPersistenceMode", handle)
        return int(
            pynvml.NVML_FEATURE_ENABLED if gpu.persistence_mode else pynvml.NVML_FEATURE_DISABLED
        )

    def nvmlDeviceGetEccMode(self, handle: FakeHandle) -> list[int]:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetEccMode", handle)
        if gpu.ecc_enabled is None:
            self._raise(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_FEATURE_ENABLED if gpu.ecc_enabled else pynvml.NVML_FEATURE_DISABLED
        return [mode, mode]

    def nvmlDeviceGetMigMode(self, device: FakeHandle) -> list[int]:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetMigMode", device)
        if not gpu.mig_capable:
            self._raise(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Any]:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        found = []
        for pid in gpu.compute_pids:
            info = pynvml.c_nvmlProcessInfo_v3_t()
            info.pid = pid
            info.usedGpuMemory = 512 * _MIB
            found.append(pynvml.nvmlStructToFriendlyObject(info))
        return found

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, type: int) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        if type == pynvml.NVML_CLOCK_SM:
            return gpu.sm_clock_mhz
        if type == pynvml.NVML_CLOCK_MEM:
            return gpu.memory_clock_mhz
        self._raise(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        raise AssertionError("unreachable")

    def nvmlDeviceGetPerformanceState(self, handle: FakeHandle) -> int:  # noqa: N802
        return self._gpu("nvmlDeviceGetPerformanceState", handle).pstate

    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeHandle) -> int:  # noqa: N802
        return int(self._gpu("nvmlDeviceGetPowerManagementLimit", handle).power_limit_w * 1000)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        return int(gpu.default_power_limit_w * 1000)

    # --- readings ------------------------------------------------------------------------
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle)
        if not gpu.energy_counter:
            self._raise(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.counter_mj(self.now_s())

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetPowerUsage", handle)
        # Averaged over the last second, as many GPUs report it.
        t_s = self.now_s()
        return int((gpu.true_energy_j(t_s) - gpu.true_energy_j(t_s - 1.0)) * 1000)

    def nvmlDeviceGetFieldValues(self, handle: FakeHandle, fieldIds: Sequence[Any]) -> Any:  # noqa: N802, N803
        gpu = self._gpu("nvmlDeviceGetFieldValues", handle)
        values = (pynvml.c_nvmlFieldValue_t * len(fieldIds))()
        for i, field_id in enumerate(fieldIds):
            try:
                (values[i].fieldId, values[i].scopeId) = field_id
            except TypeError:
                values[i].fieldId = field_id
            scope = pynvml.NVML_POWER_SCOPE_MODULE if gpu.module_power_only else 0
            if (
                values[i].fieldId == pynvml.NVML_FI_DEV_POWER_INSTANT
                and gpu.instant_power
                and values[i].scopeId == scope
            ):
                values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                values[i].value.uiVal = int(gpu.true_power_w(self.now_s()) * 1000)
                values[i].nvmlReturn = pynvml.NVML_SUCCESS
            elif values[i].fieldId in _EVENT_FIELD_IDS and gpu.event_counters:
                values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
                values[i].value.ullVal = gpu.event_ns.get(values[i].fieldId, 0)
                values[i].nvmlReturn = pynvml.NVML_SUCCESS
            else:
                values[i].nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            self._raise(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return round(gpu.temperature_at_c(self.now_s()))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: Any = None) -> Any:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        memory = pynvml.c_nvmlMemory_t()
        memory.total = int(gpu.memory_total_mb * _MIB)
        memory.used = int(gpu.memory_used_mb * _MIB)
        memory.free = memory.total - memory.used
        return memory

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> Any:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        rates = pynvml.c_nvmlUtilization_t()
        rates.gpu = gpu.utilization_at_pct(self.now_s())
        rates.memory = rates.gpu // 2
        return rates

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle)
        if not gpu.clock_events_api:
            self._raise(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return int(gpu.clock_event_reasons(self.now_s()))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        return int(gpu.clock_event_reasons(self.now_s()))


def write_rapl_zone(
    root: Path,
    zone: str,
    *,
    name: str,
    energy_uj: int,
    max_energy_range_uj: int = 262_143_328_850,
) -> Path:
    """Create (or update) one powercap zone directory, e.g. ``intel-rapl:0`` / ``package-0``."""
    directory = root / zone
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "name").write_text(f"{name}\n", encoding="ascii")
    (directory / "energy_uj").write_text(f"{energy_uj}\n", encoding="ascii")
    (directory / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n", encoding="ascii")
    return directory

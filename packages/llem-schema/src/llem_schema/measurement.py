"""What was measured around the inference: devices, energy, baseline, throttling, warmup,
environment and FLOPs. Produced by ``llem_energy`` and backends, stored as data."""

import math
from typing import Literal, Self

from pydantic import (
    AwareDatetime,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    model_validator,
)

from llem_schema._base import FrozenModel

__all__ = [
    "BaselineMeasurement",
    "BaselineMethod",
    "DeviceEnergy",
    "DeviceInfo",
    "DeviceState",
    "EnergyBreakdown",
    "EnergyDomain",
    "EnergyMethod",
    "EnvironmentSnapshot",
    "FlopsEstimate",
    "GpuInfo",
    "MeasurementWarning",
    "PowerReading",
    "PowerScope",
    "ProcessEnvironment",
    "ThermalThrottleInfo",
    "WarmupResult",
]

EnergyDomain = Literal["gpu", "cpu_package", "dram"]
EnergyMethod = Literal["counter", "integrated"]
BaselineMethod = Literal["fresh", "cached", "unavailable"]
PowerReading = Literal["instant", "averaged"]
PowerScope = Literal["gpu", "module"]

_REL_TOL = 1e-9


class DeviceInfo(FrozenModel):
    """A device a process ran on, identified by what stays the same across processes."""

    kind: Literal["gpu", "cpu"] = Field(description="Accelerator or host CPU.")
    index: NonNegativeInt = Field(description="Device index as the process saw it.")
    uuid: str = Field(
        min_length=1,
        description="Physical identity: the NVML UUID for a GPU or MIG instance, a host-scoped id for a CPU.",
    )
    name: str = Field(description="Model name, e.g. 'NVIDIA H100 80GB HBM3'.")
    mig: bool = Field(
        default=False,
        description=(
            "MIG mode is enabled on this GPU: its energy counter and power cover the whole "
            "GPU, every instance, not the instance the work ran on."
        ),
    )


class BaselineMeasurement(FrozenModel):
    """Idle power of one device, and where the figure came from."""

    method: BaselineMethod = Field(
        description="fresh (measured for this run), cached (reused, see age_s) or unavailable."
    )
    power_w: NonNegativeFloat | None = Field(description="Idle power, W; None when unavailable.")
    age_s: NonNegativeFloat | None = Field(
        default=None,
        description="Age of the figure when used, s; 0 for fresh, None if unavailable.",
    )
    duration_s: NonNegativeFloat | None = Field(
        default=None, description="How long idle power was sampled, s."
    )
    state: str | None = Field(
        default=None,
        description=(
            "The state it was measured in (e.g. 'model loaded, device synchronised and "
            "idle'); None before schema 1.3."
        ),
    )
    temperature_c: float | None = Field(
        default=None, description="Mean temperature while it was measured, deg C."
    )
    attempts: NonNegativeInt | None = Field(
        default=None,
        description=(
            "How often the devices were measured for this figure (together): 2 when one did "
            "not look idle the first time; None for a cached or unavailable figure, or before "
            "schema 1.3."
        ),
    )
    problems: list[str] = Field(
        default_factory=list,
        description=(
            "Why the device did not look idle (utilisation, foreign processes, unsteady "
            "power, cooling down), after one re-measurement; empty when it did."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.method == "unavailable") != (self.power_w is None):
            raise ValueError("power_w is None exactly when the baseline is unavailable")
        if self.method == "cached" and self.age_s is None:
            raise ValueError("a cached baseline needs its age_s")
        return self


class DeviceEnergy(FrozenModel):
    """Energy of one physical device (or RAPL domain) over one measurement window."""

    device_uuid: str = Field(
        min_length=1,
        description="DeviceInfo.uuid, or a RAPL domain id such as 'rapl:host:package-0'.",
    )
    domain: EnergyDomain = Field(description="gpu, cpu_package or dram.")
    energy_j: NonNegativeFloat = Field(description="The energy used for totals, J (see method).")
    method: EnergyMethod = Field(
        description="counter: the device's cumulative energy counter; integrated: trapezoid of sampled power."
    )
    counter_energy_j: NonNegativeFloat | None = Field(
        default=None, description="From the cumulative energy counter, J; None without one."
    )
    integrated_energy_j: NonNegativeFloat | None = Field(
        default=None, description="Trapezoidal integral of sampled power, J; None without samples."
    )
    baseline: BaselineMeasurement | None = Field(
        default=None, description="Idle power of this device, if a baseline was taken."
    )
    power_reading: PowerReading | None = Field(
        default=None,
        description=(
            "What the sampler read as power: instant (NVML_FI_DEV_POWER_INSTANT), or averaged "
            "(nvmlDeviceGetPowerUsage: a 1-second average on Ampere and newer); None for a "
            "RAPL domain or before schema 1.3."
        ),
    )
    power_scope: PowerScope | None = Field(
        default=None,
        description=(
            "gpu: the GPU's own power; module: the whole module (a Grace Hopper superchip's "
            "GPU, CPU and memory), where the GPU's alone cannot be read."
        ),
    )
    sample_rate_hz: NonNegativeFloat | None = Field(
        default=None,
        description="Power samples per second this device achieved in the window.",
    )
    sample_gaps: NonNegativeInt | None = Field(
        default=None,
        description="Gaps between this device's samples longer than twice the period.",
    )

    @model_validator(mode="after")
    def _energy_matches_method(self) -> Self:
        source = self.counter_energy_j if self.method == "counter" else self.integrated_energy_j
        if source is None or not math.isclose(self.energy_j, source, rel_tol=_REL_TOL):
            raise ValueError(f"energy_j must equal the {self.method} figure")
        return self


class EnergyBreakdown(FrozenModel):
    """How the experiment's energy figures were obtained.

    The baseline is subtracted per device over that device's own measurement window:
    ``baseline_energy_j`` = sum over devices of idle power x the window of the process that
    measured it, and ``adjusted_j`` = max(0, raw_j - baseline_energy_j). With one process
    this is max(0, raw - baseline power x duration).
    """

    raw_j: NonNegativeFloat = Field(description="Total measured energy, J.")
    baseline_energy_j: NonNegativeFloat | None = Field(
        description="Idle energy subtracted: each device's idle power x its window, summed, J."
    )
    adjusted_j: NonNegativeFloat | None = Field(
        description="max(0, raw_j - baseline_energy_j), J; None without a baseline."
    )
    baseline_power_w: NonNegativeFloat | None = Field(
        description="Idle power summed over the measured devices, W."
    )
    baseline_method: BaselineMethod = Field(
        description="fresh, cached (see baseline_age_s) or unavailable; the oldest source wins."
    )
    baseline_age_s: NonNegativeFloat | None = Field(
        description="Age of the oldest cached baseline used, s."
    )
    duration_s: NonNegativeFloat = Field(description="The experiment's measurement window, s.")
    energy_method: Literal["counter", "integrated", "mixed"] = Field(
        description="How device energies were obtained: all counter, all integrated, or mixed."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        available = self.baseline_method != "unavailable"
        for name in ("baseline_power_w", "baseline_energy_j", "adjusted_j"):
            if (getattr(self, name) is not None) != available:
                raise ValueError(f"{name} is set exactly when a baseline is available")
        if self.baseline_energy_j is not None and self.adjusted_j is not None:
            expected = max(0.0, self.raw_j - self.baseline_energy_j)
            if not math.isclose(self.adjusted_j, expected, rel_tol=1e-9, abs_tol=1e-9):
                raise ValueError(
                    f"adjusted_j ({self.adjusted_j}) must equal max(0, raw_j - "
                    f"baseline_energy_j) = {expected}"
                )
        return self


class ThermalThrottleInfo(FrozenModel):
    """Clock-event (throttle) reasons seen while measuring, and temperatures."""

    detected: bool = Field(description="Any throttling seen in the window.")
    hw_thermal: bool = Field(default=False, description="Hardware thermal slowdown seen.")
    sw_thermal: bool = Field(default=False, description="Software thermal slowdown seen.")
    power_cap: bool = Field(default=False, description="Software power cap seen.")
    hw_power_brake: bool = Field(default=False, description="Hardware power brake seen.")
    hw_slowdown: bool = Field(
        default=False,
        description="Hardware slowdown seen (reason 0x8: power brake or thermal, by the board).",
    )
    throttled_s: NonNegativeFloat = Field(
        default=0.0, description="Seconds of samples with any throttle reason active."
    )
    slowdown_s: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "Seconds with a thermal or hardware slowdown or the power brake active: the "
            "reasons that are warned about; None before schema 1.3."
        ),
    )
    power_cap_s: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "Seconds with the software power cap active: normal under inference load on "
            "recent GPUs, reported as information; None before schema 1.3."
        ),
    )
    source: Literal["samples", "counters"] | None = Field(
        default=None,
        description=(
            "Where the seconds come from: samples (the reasons read at each power sample, "
            "the union over GPUs) or counters (NVML's cumulative clock-event durations at "
            "window start and end, the longest of any GPU); None before schema 1.3."
        ),
    )
    temperature_start_c: float | None = Field(
        default=None, description="Highest device temperature at the window's start, deg C."
    )
    temperature_peak_c: float | None = Field(
        default=None, description="Highest device temperature seen in the window, deg C."
    )

    @model_validator(mode="after")
    def _detected_matches_kinds(self) -> Self:
        kinds = (
            self.hw_thermal
            or self.sw_thermal
            or self.power_cap
            or self.hw_power_brake
            or self.hw_slowdown
        )
        if self.detected != kinds:
            raise ValueError("detected must be true exactly when a throttle kind was seen")
        return self


class WarmupResult(FrozenModel):
    """What warmup did before the measurement window opened."""

    batches: NonNegativeInt = Field(description="Warmup batches run.")
    duration_s: NonNegativeFloat = Field(description="Wall time spent warming up, s.")
    latencies_ms: list[NonNegativeFloat] = Field(
        default_factory=list, description="Latency of each warmup batch, ms."
    )
    converged: bool | None = Field(
        default=None, description="Whether latency CV reached its target; None if not asked."
    )
    final_cv: NonNegativeFloat | None = Field(
        default=None, description="Latency coefficient of variation over the last window."
    )
    cv_target: NonNegativeFloat | None = Field(
        default=None, description="The CV target asked for; None if convergence was not asked."
    )


class DeviceState(FrozenModel):
    """A metered GPU's state at one instant (window start or end); None where NVML could not
    say."""

    uuid: str = Field(description="NVML UUID.")
    sm_clock_mhz: NonNegativeFloat | None = Field(default=None, description="SM clock, MHz.")
    memory_clock_mhz: NonNegativeFloat | None = Field(
        default=None, description="Memory clock, MHz."
    )
    pstate: NonNegativeInt | None = Field(
        default=None, description="Performance state: 0 (fastest) to 15."
    )
    power_limit_w: NonNegativeFloat | None = Field(
        default=None, description="Power limit in force, W."
    )
    default_power_limit_w: NonNegativeFloat | None = Field(
        default=None, description="The board's default power limit, W."
    )
    temperature_c: float | None = Field(default=None, description="Temperature, deg C.")
    compute_pids: list[NonNegativeInt] | None = Field(
        default=None, description="Processes with a compute context on the GPU (NVML's PIDs)."
    )
    foreign_pids: list[NonNegativeInt] | None = Field(
        default=None,
        description="Of those, the ones that are not this run's (not this process or its children).",
    )


class ProcessEnvironment(FrozenModel):
    """What one process's metered GPUs and driver were when its window opened and closed."""

    driver_version: str | None = Field(default=None, description="NVIDIA driver version.")
    cuda_version: str | None = Field(default=None, description="CUDA driver API version.")
    at_start: list[DeviceState] = Field(
        default_factory=list, description="Each metered GPU when the window opened."
    )
    at_end: list[DeviceState] = Field(
        default_factory=list, description="Each metered GPU when the window closed."
    )


class GpuInfo(FrozenModel):
    """One GPU as NVML describes it; a field is None where NVML could not say."""

    index: NonNegativeInt = Field(description="NVML device index.")
    uuid: str = Field(description="NVML UUID.")
    name: str = Field(description="Model name.")
    memory_total_mb: NonNegativeFloat | None = Field(default=None, description="Memory, MiB.")
    compute_capability: str | None = Field(default=None, description="e.g. '9.0'.")
    power_limit_w: NonNegativeFloat | None = Field(
        default=None, description="Enforced power limit, W."
    )
    persistence_mode: bool | None = Field(default=None, description="Persistence mode on.")
    ecc_enabled: bool | None = Field(default=None, description="ECC memory enabled.")
    mig_enabled: bool | None = Field(default=None, description="MIG mode enabled.")


class EnvironmentSnapshot(FrozenModel):
    """The machine and software a result was measured on."""

    collected_at: AwareDatetime = Field(description="When the snapshot was taken.")
    hostname: str = Field(description="Host name.")
    os: str = Field(description="Operating system and kernel.")
    python_version: str = Field(description="Python version.")
    cpu_model: str | None = Field(default=None, description="CPU model name.")
    cpu_count: NonNegativeInt | None = Field(default=None, description="Logical CPUs.")
    in_container: bool = Field(default=False, description="Running inside a container.")
    driver_version: str | None = Field(default=None, description="NVIDIA driver version.")
    cuda_version: str | None = Field(default=None, description="CUDA driver API version.")
    gpus: list[GpuInfo] = Field(default_factory=list, description="GPUs visible to NVML.")
    package_versions: dict[str, str] = Field(
        default_factory=dict, description="Versions of the packages that matter (torch, ...)."
    )


class FlopsEstimate(FrozenModel):
    """Floating-point operations of the measured inference, and how they were estimated."""

    total_flops: NonNegativeFloat = Field(description="Estimated operations, FLOPs.")
    method: str = Field(
        min_length=1, description="How: e.g. '2 x parameters x tokens' or a profiler name."
    )


class MeasurementWarning(FrozenModel):
    """Something detected that makes a figure less trustworthy, and what to do about it."""

    code: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="A stable code from the documented list (llem_schema.WARNING_CODES).",
    )
    message: str = Field(description="What was detected and what to do, one line.")
    figures: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="The figures the warning was judged from (device, measured value, limit).",
    )

    @classmethod
    def of(cls, code: str, message: str, **figures: JsonValue) -> Self:
        """A warning llem gives: ``code`` must be one of the documented ones
        (:data:`~llem_schema.WARNING_CODES`); a result read from a newer llem may hold others."""
        from llem_schema.warning_codes import WARNING_CODES

        if code not in WARNING_CODES:
            raise ValueError(
                f"{code!r} is not a documented warning code (llem_schema.WARNING_CODES)"
            )
        return cls(code=code, message=message, figures=figures)

    def __str__(self) -> str:
        return self.message

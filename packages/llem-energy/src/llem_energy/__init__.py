"""llem_energy: NVML and RAPL energy readers, power sampling, idle baseline, throttling,
environment snapshot and measurement warnings.

Depends on ``llem_schema`` (and nvidia-ml-py), never on torch, a backend or persistence.
A measurement window is two calls::

    meter = EnergyMeter.create(config.energy, gpus=["GPU-5d6f..."])
    meter.measure_baseline(config.baseline)
    window = meter.start()       # after the device is synchronised
    ...                          # inference
    reading = window.stop()      # after the device is synchronised again
    reading.energy, reading.samples, reading.throttle, reading.warnings_with(prompt_count=n)
"""

from llem_energy.baseline import BaselineCache, default_cache_dir
from llem_energy.checks import (
    MIN_PROMPTS,
    MIN_WINDOW_S,
    THERMAL_DRIFT_C,
    MeasurementFacts,
    machine_warnings,
    measurement_warnings,
    thermal_drift_c,
    warning,
)
from llem_energy.environment import (
    DEFAULT_PACKAGES,
    collect_environment,
    cpu_model,
    in_container,
    package_versions,
)
from llem_energy.errors import (
    EnergyError,
    EnergySourceUnavailableError,
    GpuLostError,
    NvmlError,
    NvmlNotSupportedError,
    NvmlPermissionError,
    NvmlUnavailableError,
    RaplPermissionError,
    RaplUnavailableError,
)
from llem_energy.meter import (
    IDLE_STATE,
    EnergyMeter,
    EnergyReading,
    EnergyWindow,
    idle_problems,
    process_tree,
)
from llem_energy.nvml import NvmlDevice, NvmlSession, resolve_gpu_indices
from llem_energy.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter, RaplReader, RaplZone, rapl_delta_uj
from llem_energy.sampler import (
    PowerSampler,
    SampleColumns,
    SampleGap,
    SamplerResult,
    achieved_rate_hz,
    integrate_power_j,
    sample_gaps,
)
from llem_energy.simulated import SIMULATED_GPUS_ENV, simulated_gpu_count
from llem_energy.throttle import THROTTLE_REASONS, summarise_throttle

__all__ = [
    "DEFAULT_PACKAGES",
    "DEFAULT_POWERCAP_ROOT",
    "IDLE_STATE",
    "MIN_PROMPTS",
    "MIN_WINDOW_S",
    "SIMULATED_GPUS_ENV",
    "THERMAL_DRIFT_C",
    "THROTTLE_REASONS",
    "BaselineCache",
    "EnergyError",
    "EnergyMeter",
    "EnergyReading",
    "EnergySourceUnavailableError",
    "EnergyWindow",
    "GpuLostError",
    "MeasurementFacts",
    "NvmlDevice",
    "NvmlError",
    "NvmlNotSupportedError",
    "NvmlPermissionError",
    "NvmlSession",
    "NvmlUnavailableError",
    "PowerSampler",
    "RaplCounter",
    "RaplPermissionError",
    "RaplReader",
    "RaplUnavailableError",
    "RaplZone",
    "SampleColumns",
    "SampleGap",
    "SamplerResult",
    "achieved_rate_hz",
    "collect_environment",
    "cpu_model",
    "default_cache_dir",
    "idle_problems",
    "in_container",
    "integrate_power_j",
    "machine_warnings",
    "measurement_warnings",
    "package_versions",
    "process_tree",
    "rapl_delta_uj",
    "resolve_gpu_indices",
    "sample_gaps",
    "simulated_gpu_count",
    "summarise_throttle",
    "thermal_drift_c",
    "warning",
]

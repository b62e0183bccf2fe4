"""One reading of the power sampler: a row of the ``timeseries.parquet`` sidecar.

A slotted dataclass rather than a pydantic model: samplers produce thousands per second
across devices, and samples are never embedded in ``result.json`` (they go to Parquet).
"""

from dataclasses import dataclass, fields

__all__ = ["TIMESERIES_COLUMNS", "PowerSample"]


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One device's power, temperature and state at one instant.

    ``None`` means the device could not report that quantity (not zero).
    """

    timestamp_s: float
    """Seconds from the start of the measurement window (negative before it opened)."""
    gpu_index: int
    """NVML device index: host-wide, unaffected by CUDA_VISIBLE_DEVICES."""
    gpu_power_w: float | None
    """Instant power where the GPU offers it, else its averaged power, W."""
    gpu_temperature_c: float | None
    """GPU temperature, deg C."""
    gpu_memory_used_mb: float | None = None
    """Device memory in use, MiB."""
    gpu_utilization_pct: float | None = None
    """GPU utilisation over the driver's last sample period, percent."""
    clock_event_reasons: int | None = None
    """NVML clock-event (throttle) reasons bitmask at this instant."""


TIMESERIES_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(PowerSample))
"""Column order of ``timeseries.parquet``: the first four are the documented core."""

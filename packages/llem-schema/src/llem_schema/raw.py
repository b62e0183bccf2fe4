"""One process's measurement, staged before late aggregation: :class:`RawProcessResult`."""

from typing import Self

from pydantic import (
    AwareDatetime,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from llem_schema._base import FrozenModel
from llem_schema.backend import ModelInfo
from llem_schema.ids import ExperimentId, validate_sidecar_name
from llem_schema.measurement import (
    DeviceEnergy,
    DeviceInfo,
    FlopsEstimate,
    MeasurementWarning,
    ProcessEnvironment,
    ThermalThrottleInfo,
    WarmupResult,
)
from llem_schema.records import RequestRecord
from llem_schema.versions import SCHEMA_VERSION, parse_version

__all__ = ["RawProcessResult"]


class RawProcessResult(FrozenModel):
    """Everything one worker process measured, before any statistic is computed.

    Written atomically to ``results/.staging/<experiment_id>/process_<i>.json`` and embedded in
    the aggregated :class:`~llem_schema.ExperimentResult`.
    """

    schema_version: str = Field(
        default=SCHEMA_VERSION, description="llem schema version, 'major.minor'."
    )
    experiment_id: ExperimentId = Field(description="The experiment this process belongs to.")
    measurement_config_hash: str = Field(min_length=1, description="Hash of the measured config.")
    model: str = Field(min_length=1, description="Model name or path as configured.")
    backend: str = Field(min_length=1, description="Inference backend name.")
    backend_version: str = Field(description="Backend version (e.g. transformers and torch).")
    process_index: NonNegativeInt = Field(description="Rank of this process, 0-based.")
    num_processes: PositiveInt = Field(description="Processes launched for the experiment.")
    hostname: str = Field(description="Host this process ran on.")
    model_info: ModelInfo | None = Field(
        default=None,
        description="What the backend loaded and where (None in results before schema 1.1).",
    )
    devices: list[DeviceInfo] = Field(description="Devices this process used.")
    start_time: AwareDatetime = Field(description="Measurement window start (wall clock).")
    end_time: AwareDatetime = Field(description="Measurement window end (wall clock).")
    duration_s: NonNegativeFloat = Field(description="Window length on the monotonic clock, s.")
    requests: list[RequestRecord] = Field(description="Every request measured, in order.")
    interrupted: bool = Field(
        default=False,
        description=(
            "The run was stopped (Ctrl-C, SIGTERM) before every request finished; requests "
            "holds those that did."
        ),
    )
    energy: list[DeviceEnergy] = Field(
        default_factory=list,
        description="Energy per device over the window; empty without a source.",
    )
    sample_count: NonNegativeInt = Field(
        default=0, description="Power samples taken in the window."
    )
    peak_memory_mb: NonNegativeFloat | None = Field(
        default=None, description="Peak memory, MiB (see peak_memory_source)."
    )
    peak_memory_source: str | None = Field(
        default=None,
        min_length=1,
        description="cuda: peak allocated device memory; rss: process resident set; or the "
        "backend's own name for what it measured.",
    )
    flops: FlopsEstimate | None = Field(default=None, description="FLOPs of this process's work.")
    warmup: WarmupResult | None = Field(default=None, description="This process's warmup.")
    throttle: ThermalThrottleInfo | None = Field(
        default=None, description="Throttling seen by this process."
    )
    measurement_warnings: list[MeasurementWarning] = Field(
        default_factory=list, description="What this process detected, and what to do."
    )
    environment: ProcessEnvironment | None = Field(
        default=None,
        description=(
            "The metered GPUs' clocks, P-state, power limits, temperature and compute "
            "processes at window start and end, and the driver; None without NVML or before "
            "schema 1.3."
        ),
    )
    simulated: bool = Field(
        default=False,
        description="Its GPUs were simulated (LLEM_SIMULATED_GPUS): no figure is a measurement.",
    )
    timeseries: str | None = Field(
        default=None, description="Staged power/temperature samples file beside this one, if any."
    )

    @field_validator("timeseries")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_sidecar_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        parse_version(self.schema_version)
        if self.process_index >= self.num_processes:
            raise ValueError(
                f"process_index {self.process_index} is outside 0..{self.num_processes - 1}"
            )
        if self.end_time < self.start_time:
            raise ValueError("end_time precedes start_time")
        ids = [energy.device_uuid for energy in self.energy]
        if len(ids) != len(set(ids)):
            raise ValueError("each device appears at most once in energy")
        return self

    @property
    def input_tokens(self) -> int:
        """Prompt tokens over all requests."""
        return sum(request.input_tokens for request in self.requests)

    @property
    def output_tokens(self) -> int:
        """Generated tokens over all requests."""
        return sum(request.output_tokens for request in self.requests)

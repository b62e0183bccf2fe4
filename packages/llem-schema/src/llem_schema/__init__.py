"""llem_schema: the result format of llem.

Pydantic models for experiment configs (:class:`ExperimentConfig`), per-process and aggregated
results (:class:`RawProcessResult`, :class:`ExperimentResult`), the backend interface
(:class:`InferenceBackend`), the metric definitions, result.json I/O with version migrations,
and the JSON Schema. Its only third-party dependency is pydantic: installing ``llem-schema``
alone is enough to read any result llem ever wrote.

>>> from llem_schema import ExperimentResult
>>> result = ExperimentResult.from_json("results/llama-3.2-1b_pytorch_2026-11-22T14-03-05")
"""

from llem_schema._base import FrozenModel
from llem_schema.backend import InferenceBackend, ModelInfo
from llem_schema.config import (
    BaselineConfig,
    DecoderConfig,
    EnergyConfig,
    ExperimentConfig,
    PromptsConfig,
    PyTorchConfig,
    WarmupConfig,
    measurement_config_hash,
    parse_config,
)
from llem_schema.errors import (
    ConfigError,
    InvalidExperimentIdError,
    LlemError,
    LlemWarning,
    ResultFormatError,
    SchemaVersionError,
)
from llem_schema.ids import ExperimentId, new_experiment_id, validate_experiment_id
from llem_schema.json_schema import json_schema
from llem_schema.measurement import (
    BaselineMeasurement,
    DeviceEnergy,
    DeviceInfo,
    EnergyBreakdown,
    EnvironmentSnapshot,
    FlopsEstimate,
    GpuInfo,
    ThermalThrottleInfo,
    WarmupResult,
)
from llem_schema.metrics import EfficiencyMetrics, LatencyMetrics, LatencyStats
from llem_schema.raw import RawProcessResult
from llem_schema.records import RequestRecord, RequestTiming
from llem_schema.result import (
    RESULT_FILE,
    TIMESERIES_FILE,
    AggregationMetadata,
    ExperimentResult,
    MultiGPUMetrics,
)
from llem_schema.samples import TIMESERIES_COLUMNS, PowerSample
from llem_schema.versions import SCHEMA_VERSION

__all__ = [
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "TIMESERIES_COLUMNS",
    "TIMESERIES_FILE",
    "AggregationMetadata",
    "BaselineConfig",
    "BaselineMeasurement",
    "ConfigError",
    "DecoderConfig",
    "DeviceEnergy",
    "DeviceInfo",
    "EfficiencyMetrics",
    "EnergyBreakdown",
    "EnergyConfig",
    "EnvironmentSnapshot",
    "ExperimentConfig",
    "ExperimentId",
    "ExperimentResult",
    "FlopsEstimate",
    "FrozenModel",
    "GpuInfo",
    "InferenceBackend",
    "InvalidExperimentIdError",
    "LatencyMetrics",
    "LatencyStats",
    "LlemError",
    "LlemWarning",
    "ModelInfo",
    "MultiGPUMetrics",
    "PowerSample",
    "PromptsConfig",
    "PyTorchConfig",
    "RawProcessResult",
    "RequestRecord",
    "RequestTiming",
    "ResultFormatError",
    "SchemaVersionError",
    "ThermalThrottleInfo",
    "WarmupConfig",
    "WarmupResult",
    "json_schema",
    "measurement_config_hash",
    "new_experiment_id",
    "parse_config",
    "validate_experiment_id",
]

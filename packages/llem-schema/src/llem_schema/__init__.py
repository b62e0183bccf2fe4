"""llem_schema: the result format of llem.

Pydantic models for experiment configs (:class:`ExperimentConfig`), per-process and aggregated
results (:class:`RawProcessResult`, :class:`ExperimentResult`), studies (:class:`StudyConfig`,
:class:`StudyManifest`, :class:`StudyResult`), the backend interface (:class:`InferenceBackend`),
the metric definitions, result.json I/O with version migrations, and the JSON Schema. Its only third-party dependency is pydantic: installing ``llem-schema``
alone is enough to read any result llem ever wrote.

>>> from llem_schema import ExperimentResult
>>> result = ExperimentResult.from_json("results/llama-3.2-1b_pytorch_2026-11-22T14-03-05")
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem_schema._base import FrozenModel
    from llem_schema.backend import InferenceBackend, ModelInfo, PeakMemory, Request, WorkerContext
    from llem_schema.config import (
        BaselineConfig,
        DecoderConfig,
        EnergyConfig,
        ExperimentConfig,
        LoadConfig,
        PromptsConfig,
        SloConfig,
        WarmupConfig,
        measurement_config_hash,
        parse_config,
        resolve_backend_settings,
    )
    from llem_schema.errors import (
        BackendNotFoundError,
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
        DeviceState,
        EnergyBreakdown,
        EnvironmentSnapshot,
        FlopsEstimate,
        GpuInfo,
        MeasurementWarning,
        ProcessEnvironment,
        ThermalThrottleInfo,
        WarmupResult,
    )
    from llem_schema.metrics import (
        EfficiencyMetrics,
        LatencyMetrics,
        LatencyStats,
        RequestMetrics,
        SteadyStateMetrics,
    )
    from llem_schema.prompts import builtin_prompts
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
    from llem_schema.statistics import MetricStatistics, cycle_statistics
    from llem_schema.study_config import StudyConfig, parse_study
    from llem_schema.study_manifest import MANIFEST_FILE, ManifestEntry, StudyManifest
    from llem_schema.study_plan import (
        PlannedRun,
        SkippedPoint,
        StudyPlan,
        StudyPoint,
        expand_study,
    )
    from llem_schema.study_result import (
        STUDY_RESULT_FILE,
        ConfigurationSummary,
        StudyResult,
        StudySummary,
        summarize_study,
    )
    from llem_schema.versions import SCHEMA_VERSION
    from llem_schema.warning_codes import WARNING_CODES

__all__ = [
    "MANIFEST_FILE",
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "STUDY_RESULT_FILE",
    "TIMESERIES_COLUMNS",
    "TIMESERIES_FILE",
    "WARNING_CODES",
    "AggregationMetadata",
    "BackendNotFoundError",
    "BaselineConfig",
    "BaselineMeasurement",
    "ConfigError",
    "ConfigurationSummary",
    "DecoderConfig",
    "DeviceEnergy",
    "DeviceInfo",
    "DeviceState",
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
    "LoadConfig",
    "ManifestEntry",
    "MeasurementWarning",
    "MetricStatistics",
    "ModelInfo",
    "MultiGPUMetrics",
    "PeakMemory",
    "PlannedRun",
    "PowerSample",
    "ProcessEnvironment",
    "PromptsConfig",
    "RawProcessResult",
    "Request",
    "RequestMetrics",
    "RequestRecord",
    "RequestTiming",
    "ResultFormatError",
    "SchemaVersionError",
    "SkippedPoint",
    "SloConfig",
    "SteadyStateMetrics",
    "StudyConfig",
    "StudyManifest",
    "StudyPlan",
    "StudyPoint",
    "StudyResult",
    "StudySummary",
    "ThermalThrottleInfo",
    "WarmupConfig",
    "WarmupResult",
    "WorkerContext",
    "builtin_prompts",
    "cycle_statistics",
    "expand_study",
    "json_schema",
    "measurement_config_hash",
    "new_experiment_id",
    "parse_config",
    "parse_study",
    "resolve_backend_settings",
    "summarize_study",
    "validate_experiment_id",
]

# Each public name and the module defining it. Modules load on first use, so importing
# the package stays cheap (the CLI lists results without loading pydantic or pyarrow).
_EXPORTS: dict[str, str] = {
    "FrozenModel": "llem_schema._base",
    "InferenceBackend": "llem_schema.backend",
    "ModelInfo": "llem_schema.backend",
    "PeakMemory": "llem_schema.backend",
    "Request": "llem_schema.backend",
    "WorkerContext": "llem_schema.backend",
    "BaselineConfig": "llem_schema.config",
    "DecoderConfig": "llem_schema.config",
    "EnergyConfig": "llem_schema.config",
    "ExperimentConfig": "llem_schema.config",
    "LoadConfig": "llem_schema.config",
    "SloConfig": "llem_schema.config",
    "PromptsConfig": "llem_schema.config",
    "WarmupConfig": "llem_schema.config",
    "measurement_config_hash": "llem_schema.config",
    "parse_config": "llem_schema.config",
    "resolve_backend_settings": "llem_schema.config",
    "BackendNotFoundError": "llem_schema.errors",
    "ConfigError": "llem_schema.errors",
    "InvalidExperimentIdError": "llem_schema.errors",
    "LlemError": "llem_schema.errors",
    "LlemWarning": "llem_schema.errors",
    "ResultFormatError": "llem_schema.errors",
    "SchemaVersionError": "llem_schema.errors",
    "ExperimentId": "llem_schema.ids",
    "new_experiment_id": "llem_schema.ids",
    "validate_experiment_id": "llem_schema.ids",
    "json_schema": "llem_schema.json_schema",
    "BaselineMeasurement": "llem_schema.measurement",
    "DeviceEnergy": "llem_schema.measurement",
    "DeviceInfo": "llem_schema.measurement",
    "DeviceState": "llem_schema.measurement",
    "ProcessEnvironment": "llem_schema.measurement",
    "EnergyBreakdown": "llem_schema.measurement",
    "EnvironmentSnapshot": "llem_schema.measurement",
    "FlopsEstimate": "llem_schema.measurement",
    "GpuInfo": "llem_schema.measurement",
    "ThermalThrottleInfo": "llem_schema.measurement",
    "WarmupResult": "llem_schema.measurement",
    "EfficiencyMetrics": "llem_schema.metrics",
    "LatencyMetrics": "llem_schema.metrics",
    "LatencyStats": "llem_schema.metrics",
    "RequestMetrics": "llem_schema.metrics",
    "SteadyStateMetrics": "llem_schema.metrics",
    "builtin_prompts": "llem_schema.prompts",
    "RawProcessResult": "llem_schema.raw",
    "RequestRecord": "llem_schema.records",
    "RequestTiming": "llem_schema.records",
    "RESULT_FILE": "llem_schema.result",
    "TIMESERIES_FILE": "llem_schema.result",
    "AggregationMetadata": "llem_schema.result",
    "ExperimentResult": "llem_schema.result",
    "MultiGPUMetrics": "llem_schema.result",
    "TIMESERIES_COLUMNS": "llem_schema.samples",
    "PowerSample": "llem_schema.samples",
    "WARNING_CODES": "llem_schema.warning_codes",
    "MeasurementWarning": "llem_schema.measurement",
    "MetricStatistics": "llem_schema.statistics",
    "cycle_statistics": "llem_schema.statistics",
    "StudyConfig": "llem_schema.study_config",
    "parse_study": "llem_schema.study_config",
    "MANIFEST_FILE": "llem_schema.study_manifest",
    "ManifestEntry": "llem_schema.study_manifest",
    "StudyManifest": "llem_schema.study_manifest",
    "PlannedRun": "llem_schema.study_plan",
    "SkippedPoint": "llem_schema.study_plan",
    "StudyPlan": "llem_schema.study_plan",
    "StudyPoint": "llem_schema.study_plan",
    "expand_study": "llem_schema.study_plan",
    "STUDY_RESULT_FILE": "llem_schema.study_result",
    "ConfigurationSummary": "llem_schema.study_result",
    "StudyResult": "llem_schema.study_result",
    "StudySummary": "llem_schema.study_result",
    "summarize_study": "llem_schema.study_result",
    "SCHEMA_VERSION": "llem_schema.versions",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

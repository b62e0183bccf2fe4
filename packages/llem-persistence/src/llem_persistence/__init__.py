"""llem_persistence: timeseries Parquet, raw per-process staging, late aggregation and
exporters.

Depends on ``llem_schema`` (with pyarrow and numpy), never on energy readers, a backend or
the results store (``llem_store``).
"""

from llem_persistence.aggregation import aggregate_results
from llem_persistence.errors import AggregationError, PersistenceError, UnsafePathError
from llem_persistence.exporters import (
    EXPORT_FORMATS,
    REQUEST_COLUMNS,
    SUMMARY_COLUMN_NAMES,
    SUMMARY_COLUMNS,
    ExportError,
    export,
    export_csv,
    export_json,
    export_parquet,
    export_requests,
    export_xlsx,
)
from llem_persistence.finalize import finalize_experiment
from llem_persistence.staging import Completeness, StagedExperiment, StagingRepository
from llem_persistence.timeseries import (
    TimeseriesColumns,
    check_timeseries,
    merge_timeseries,
    read_timeseries,
    write_timeseries,
)

__all__ = [
    "EXPORT_FORMATS",
    "REQUEST_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_COLUMN_NAMES",
    "AggregationError",
    "Completeness",
    "ExportError",
    "PersistenceError",
    "StagedExperiment",
    "StagingRepository",
    "TimeseriesColumns",
    "UnsafePathError",
    "aggregate_results",
    "check_timeseries",
    "export",
    "export_csv",
    "export_json",
    "export_parquet",
    "export_requests",
    "export_xlsx",
    "finalize_experiment",
    "merge_timeseries",
    "read_timeseries",
    "write_timeseries",
]

"""llem_persistence: timeseries Parquet, raw per-process staging, late aggregation, exporters
and the SQLite results store.

Depends on ``llem_schema`` (and pyarrow), never on energy readers or a backend.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem_persistence.aggregation import aggregate_results
    from llem_persistence.errors import (
        AggregationError,
        DuplicateResultError,
        ForeignDatabaseError,
        PersistenceError,
        StoreError,
        StoreLookupError,
        UnsafePathError,
    )
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
        export_xlsx,
    )
    from llem_persistence.finalize import finalize_experiment
    from llem_persistence.staging import Completeness, StagedExperiment, StagingRepository
    from llem_persistence.store import (
        DEFAULT_STORE_FILE,
        ExperimentSummary,
        ImportReport,
        IngestOutcome,
        IntegrityReport,
        ResultStore,
        StudySummary,
    )
    from llem_persistence.timeseries import (
        TimeseriesColumns,
        merge_timeseries,
        read_timeseries,
        write_timeseries,
    )

__all__ = [
    "DEFAULT_STORE_FILE",
    "EXPORT_FORMATS",
    "REQUEST_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_COLUMN_NAMES",
    "AggregationError",
    "Completeness",
    "DuplicateResultError",
    "ExperimentSummary",
    "ExportError",
    "ForeignDatabaseError",
    "ImportReport",
    "IngestOutcome",
    "IntegrityReport",
    "PersistenceError",
    "ResultStore",
    "StagedExperiment",
    "StagingRepository",
    "StoreError",
    "StoreLookupError",
    "StudySummary",
    "TimeseriesColumns",
    "UnsafePathError",
    "aggregate_results",
    "export",
    "export_csv",
    "export_json",
    "export_parquet",
    "export_xlsx",
    "finalize_experiment",
    "merge_timeseries",
    "read_timeseries",
    "write_timeseries",
]

# Each public name and the module defining it. Modules load on first use, so importing
# the package stays cheap (the CLI lists results without loading pydantic or pyarrow).
_EXPORTS: dict[str, str] = {
    "aggregate_results": "llem_persistence.aggregation",
    "AggregationError": "llem_persistence.errors",
    "PersistenceError": "llem_persistence.errors",
    "UnsafePathError": "llem_persistence.errors",
    "DuplicateResultError": "llem_persistence.errors",
    "ForeignDatabaseError": "llem_persistence.errors",
    "StoreError": "llem_persistence.errors",
    "StoreLookupError": "llem_persistence.errors",
    "EXPORT_FORMATS": "llem_persistence.exporters",
    "REQUEST_COLUMNS": "llem_persistence.exporters",
    "SUMMARY_COLUMN_NAMES": "llem_persistence.exporters",
    "SUMMARY_COLUMNS": "llem_persistence.exporters",
    "ExportError": "llem_persistence.exporters",
    "export": "llem_persistence.exporters",
    "export_csv": "llem_persistence.exporters",
    "export_json": "llem_persistence.exporters",
    "export_parquet": "llem_persistence.exporters",
    "export_xlsx": "llem_persistence.exporters",
    "finalize_experiment": "llem_persistence.finalize",
    "Completeness": "llem_persistence.staging",
    "StagedExperiment": "llem_persistence.staging",
    "StagingRepository": "llem_persistence.staging",
    "DEFAULT_STORE_FILE": "llem_persistence.store",
    "ExperimentSummary": "llem_persistence.store",
    "ImportReport": "llem_persistence.store",
    "IngestOutcome": "llem_persistence.store",
    "IntegrityReport": "llem_persistence.store",
    "ResultStore": "llem_persistence.store",
    "StudySummary": "llem_persistence.store",
    "merge_timeseries": "llem_persistence.timeseries",
    "read_timeseries": "llem_persistence.timeseries",
    "write_timeseries": "llem_persistence.timeseries",
    "TimeseriesColumns": "llem_persistence.timeseries",
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

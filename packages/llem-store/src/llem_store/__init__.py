"""llem_store: the SQLite index of result directories, never the only copy of a result.

Depends on ``llem_schema`` only. Opening a store and querying it load neither pydantic nor
pyarrow; pydantic loads when a result is ingested.
"""

from llem_store.errors import (
    CorruptStoreError,
    DuplicateResultError,
    ForeignDatabaseError,
    NoStoreError,
    NotAStoreError,
    ReadOnlyStoreError,
    StoreError,
    StoreLookupError,
    StorePathError,
    UnknownExperimentError,
    UnknownStudyError,
    UnreadableResultError,
)
from llem_store.migrations import STORE_SCHEMA_VERSION
from llem_store.models import (
    EXPERIMENT_STATUSES,
    DeletedExperiment,
    ExperimentStatus,
    ExperimentSummary,
    ImportReport,
    IngestOutcome,
    IntegrityReport,
    StudyRecord,
)
from llem_store.queries import SORT_KEYS, ExperimentFilter, RunTimes
from llem_store.store import DEFAULT_STORE_FILE, ResultStore

__all__ = [
    "DEFAULT_STORE_FILE",
    "EXPERIMENT_STATUSES",
    "SORT_KEYS",
    "STORE_SCHEMA_VERSION",
    "CorruptStoreError",
    "DeletedExperiment",
    "DuplicateResultError",
    "ExperimentFilter",
    "ExperimentStatus",
    "ExperimentSummary",
    "ForeignDatabaseError",
    "ImportReport",
    "IngestOutcome",
    "IntegrityReport",
    "NoStoreError",
    "NotAStoreError",
    "ReadOnlyStoreError",
    "ResultStore",
    "RunTimes",
    "StoreError",
    "StoreLookupError",
    "StorePathError",
    "StudyRecord",
    "UnknownExperimentError",
    "UnknownStudyError",
    "UnreadableResultError",
]

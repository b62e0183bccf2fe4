"""The SQLite results store: an index of result directories, never the only copy of a result.

Importing it loads neither pyarrow nor pydantic; they load when a result is ingested.
"""

from llem_persistence.store._schema import STORE_SCHEMA_VERSION
from llem_persistence.store.models import (
    EXPERIMENT_STATUSES,
    ExperimentStatus,
    ExperimentSummary,
    ImportReport,
    IngestOutcome,
    IntegrityReport,
    StudySummary,
)
from llem_persistence.store.store import DEFAULT_STORE_FILE, SORT_KEYS, ResultStore

__all__ = [
    "DEFAULT_STORE_FILE",
    "EXPERIMENT_STATUSES",
    "SORT_KEYS",
    "STORE_SCHEMA_VERSION",
    "ExperimentStatus",
    "ExperimentSummary",
    "ImportReport",
    "IngestOutcome",
    "IntegrityReport",
    "ResultStore",
    "StudySummary",
]

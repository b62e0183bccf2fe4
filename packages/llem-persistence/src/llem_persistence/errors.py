"""Errors raised by llem_persistence, all rooted in :class:`llem_schema.LlemError`."""

from llem_schema import LlemError

__all__ = [
    "AggregationError",
    "CorruptStoreError",
    "DuplicateResultError",
    "ForeignDatabaseError",
    "PersistenceError",
    "StoreError",
    "StoreLookupError",
    "UnsafePathError",
]


class PersistenceError(LlemError):
    """A result, staged file or export could not be written or read."""


class UnsafePathError(PersistenceError):
    """A path built from user input would leave the results directory."""


class AggregationError(PersistenceError):
    """Per-process results cannot be combined (mixed models, duplicates, nothing to combine)."""


class StoreError(PersistenceError):
    """The results store failed: a corrupt database, a write that did not go through."""


class StoreLookupError(StoreError, LookupError):
    """Asked for something the store does not have: an unknown experiment id, a missing
    result directory, no database at the given path."""


class ForeignDatabaseError(StoreError):
    """The database file is not an llem results store (another application's, or not SQLite)."""


class DuplicateResultError(StoreError):
    """A second live copy of an experiment that is already indexed from another directory."""


class CorruptStoreError(StoreError):
    """The database file is damaged; the message says how to restore or rebuild it."""

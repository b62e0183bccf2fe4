"""Errors raised by llem_store, all rooted in :class:`llem_schema.LlemError`.

Each says what is wrong and carries what it concerns (a path, an experiment id); which
``llem`` command sets it right is the command's to add.
"""

from pathlib import Path

from llem_schema import LlemError

__all__ = [
    "CorruptStoreError",
    "DuplicateResultError",
    "ForeignDatabaseError",
    "NoStoreError",
    "NotAStoreError",
    "ReadOnlyStoreError",
    "StoreError",
    "StoreLookupError",
    "StorePathError",
    "UnknownExperimentError",
    "UnknownStudyError",
    "UnreadableResultError",
]


class StoreError(LlemError):
    """The results store failed: a corrupt database, a write that did not go through."""


class StoreLookupError(StoreError, LookupError):
    """Asked for something the store does not have: an unknown experiment id, a missing
    result directory, no database at the given path."""


class NoStoreError(StoreLookupError):
    """There is no results store at ``path`` (no file, or an empty one) and none was to be
    created."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class UnknownExperimentError(StoreLookupError):
    """The store knows no experiment ``experiment_id`` names (nor one it begins)."""

    def __init__(self, message: str, *, experiment_id: str) -> None:
        super().__init__(message)
        self.experiment_id = experiment_id


class UnreadableResultError(StoreLookupError):
    """A result directory's ``result.json`` cannot be read (permissions, a directory in its
    place): that result is passed over, the store is fine."""


class UnknownStudyError(StoreLookupError):
    """The store knows no study of that id or name."""

    def __init__(self, message: str, *, study: str) -> None:
        super().__init__(message)
        self.study = study


class ForeignDatabaseError(StoreError):
    """The database file is not an llem results store (another application's, or not SQLite)."""


class NotAStoreError(ForeignDatabaseError):
    """The file opened as the results store (``path``) is not one."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class DuplicateResultError(StoreError):
    """A second live copy of an experiment that is already indexed from another directory."""


class StorePathError(StoreError):
    """No store can be created at ``path``: a file is in the way of its directory, or the
    directory cannot be created. A mistake in the path asked for."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class ReadOnlyStoreError(StoreError):
    """A change was asked of a store opened read-only (its file or directory cannot be
    written)."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class CorruptStoreError(StoreError):
    """The database file at ``path`` is damaged: restore a backup or rebuild the index."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path

"""Errors raised by llem_persistence, all rooted in :class:`llem_schema.LlemError`.

Each says what is wrong and carries what it concerns (a path, an experiment id); how to set it
right with the ``llem`` command is the command's to add.
"""

from llem_schema import LlemError

__all__ = ["AggregationError", "PersistenceError", "UnsafePathError"]


class PersistenceError(LlemError):
    """A result, staged file or export could not be written or read."""


class UnsafePathError(PersistenceError):
    """A path built from user input would leave the results directory."""


class AggregationError(PersistenceError):
    """Per-process results cannot be combined (mixed models, duplicates, nothing to combine)."""

"""Errors raised by llem_persistence, all rooted in :class:`llem_schema.LlemError`."""

from llem_schema import LlemError

__all__ = ["PersistenceError"]


class PersistenceError(LlemError):
    """A result, staged file or export could not be written or read."""

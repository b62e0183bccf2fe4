"""Errors raised by llem_backend_pytorch, all rooted in :class:`llem_schema.LlemError`."""

from llem_schema import LlemError

__all__ = ["BackendError"]


class BackendError(LlemError):
    """The model could not be loaded or inference failed."""

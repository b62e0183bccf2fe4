"""Errors raised by llem_backend_pytorch, all rooted in :class:`llem_schema.LlemError`.

Every message is one line a user can act on: what went wrong, where, and what to do.
"""

from llem_schema import ConfigError, LlemError

__all__ = ["BackendError", "BackendStateError", "ModelNotFoundError"]


class BackendError(LlemError):
    """The model could not be loaded or inference failed."""


class ModelNotFoundError(BackendError, ConfigError):
    """The model is neither a local directory nor a hub id in the local cache (never
    downloaded): a mistake in the config's ``model`` (exit 2), found before anything runs."""

    def __init__(self, message: str) -> None:
        super().__init__(message, key="model")


class BackendStateError(BackendError):
    """A backend method was called out of order (for example ``run`` before ``load``)."""

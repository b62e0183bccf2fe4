"""Errors of the ``openai`` backend, rooted in :class:`llem_schema.LlemError`."""

from llem_schema import LlemError

__all__ = ["ServerError"]


class ServerError(LlemError):
    """The server cannot be used: it does not start, does not answer, or refuses the model."""

"""Errors raised by llem_energy, all rooted in :class:`llem_schema.LlemError`."""

from llem_schema import LlemError

__all__ = ["EnergyError"]


class EnergyError(LlemError):
    """An energy source could not be opened or read."""

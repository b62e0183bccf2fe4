"""The root of llem's errors and warnings.

Every error llem raises on purpose derives from :class:`LlemError`, and ``str(error)`` is one
line a user can act on: what went wrong, where, and what to do. Each llem package adds its own
subclasses in its own ``errors.py``.
"""

__all__ = [
    "BackendNotFoundError",
    "ConfigError",
    "InvalidExperimentIdError",
    "LlemError",
    "LlemWarning",
    "ResultFormatError",
    "SchemaVersionError",
]


class LlemError(Exception):
    """Base class of every error llem raises on purpose; its message is one actionable line."""


class ConfigError(LlemError, ValueError):
    """An experiment or study configuration is invalid.

    ``key`` is the dotted path of the offending key (``decoder.temperature``), or ``None``
    when the problem concerns the whole configuration.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class BackendNotFoundError(ConfigError):
    """A config selects a backend that is not installed; ``installed`` names those that are."""

    def __init__(self, name: str, installed: list[str]) -> None:
        super().__init__(
            f"config key 'backend': no backend {name!r} is installed "
            f"(installed: {', '.join(installed) or 'none'})",
            key="backend",
        )
        self.name = name
        self.installed = installed


class ResultFormatError(LlemError):
    """A file is not a readable llem result: corrupt JSON, not a result, or invalid fields."""


class SchemaVersionError(ResultFormatError):
    """A result was written by a newer schema version than this reader understands."""


class InvalidExperimentIdError(LlemError, ValueError):
    """An experiment id that could escape the results directory or is otherwise unusable."""


class LlemWarning(UserWarning):
    """Something was recovered from rather than failed on (for example a missing sidecar)."""

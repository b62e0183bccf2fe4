"""Errors of the llem application, rooted in :class:`llem_schema.LlemError`, and exit codes."""

from typing import Final

from llem_persistence.errors import ForeignDatabaseError, StoreLookupError
from llem_schema import ConfigError, LlemError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunFailedError",
    "RunInterruptedError",
    "StudyInterruptedError",
    "UsageError",
    "exit_code_for",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


class UsageError(LlemError):
    """The user asked for something impossible: a bad flag value, an unknown id."""


class RunFailedError(LlemError):
    """A run did not finish; the message says what is kept and how to recover it."""


class RunInterruptedError(LlemError):
    """Ctrl-C during a run; staged results are kept."""


class StudyInterruptedError(RunInterruptedError):
    """Ctrl-C (or SIGTERM) during a study; the manifest says what completed and
    ``llem study --resume`` runs the rest."""


def exit_code_for(error: LlemError) -> int:
    """2 for the user's mistakes (bad config or usage, an unknown experiment id, a missing or
    foreign results store), 130 for Ctrl-C, 1 for failures (a corrupt store included)."""
    if isinstance(error, ConfigError | UsageError | StoreLookupError | ForeignDatabaseError):
        return EXIT_USAGE
    if isinstance(error, RunInterruptedError):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE

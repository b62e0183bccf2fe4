"""Errors of the harness, rooted in :class:`llem_schema.LlemError`.

Each carries the data a caller needs (which experiment, which backend, where its staging is)
and a message that says what is wrong; a front end (the ``llem`` command) adds how to go on.
"""

import signal
from pathlib import Path
from typing import Final

from llem_schema import BackendNotFoundError, ConfigError, LlemError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "BackendLoadError",
    "BackendNotFoundError",
    "HarnessError",
    "OutputDirectoryError",
    "RunFailedError",
    "RunInterruptedError",
    "StudyChangedError",
    "StudyDirectoryError",
    "StudyInterruptedError",
    "Terminated",
    "UsageError",
    "WorkerFailedError",
    "WrongFileKindError",
    "describe_exception",
    "exit_code_for",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C (SIGINT): 128 + the signal's number, as a shell reports a process it stopped."""
EXIT_TERMINATED: Final = 143
"""SIGTERM (``kill``, a scheduler stopping the job)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises :class:`KeyboardInterrupt`: a run stops the same
    way for either, and only its exit code (143, not 130) tells them apart."""


class HarnessError(LlemError):
    """Base class of the harness's errors."""


class UsageError(HarnessError):
    """Something asked of the harness that cannot be done as asked: a directory that is not a
    study, a study another process is running, devices that do not exist."""


class WrongFileKindError(ConfigError):
    """A study file given where an experiment config is read, or the other way round:
    ``kind`` is what ``path`` is (``study`` or ``experiment``), ``keys`` the keys that say so."""

    def __init__(self, path: Path, *, kind: str, keys: list[str]) -> None:
        other = "an experiment config" if kind == "study" else "a study file"
        super().__init__(
            f"{path} is {'a study file' if kind == 'study' else 'an experiment config'} "
            f"(it has {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}), not {other}"
        )
        self.path = path
        self.kind = kind
        self.keys = keys


class BackendLoadError(HarnessError):
    """An installed backend cannot be used: its module fails to import, or what its entry
    point names is not a backend class."""

    def __init__(self, name: str, distribution: str | None, reason: str) -> None:
        where = f" (package {distribution})" if distribution else ""
        super().__init__(f"backend {name!r}{where} cannot be loaded: {reason}")
        self.name = name
        self.distribution = distribution
        self.reason = reason


class WorkerFailedError(HarnessError):
    """A worker process died or raised; ``process_index`` says which."""

    def __init__(self, message: str, *, process_index: int) -> None:
        super().__init__(message)
        self.process_index = process_index


class RunFailedError(HarnessError):
    """A run did not finish. ``staged`` says whether processes that finished left their raw
    results in the staging of ``results_dir``, to be aggregated later; ``saved``, where what
    finished was saved instead, marked incomplete (``complete``: every request had finished
    when it was stopped); ``files``, where the files a backend left (a server's log) are kept
    when no process finished."""

    def __init__(
        self,
        reason: str,
        *,
        experiment_id: str,
        results_dir: Path,
        staged: bool,
        saved: Path | None = None,
        files: Path | None = None,
        complete: bool = False,
    ) -> None:
        if saved is not None and complete:  # stopped once every request had finished
            kept = f"every request had finished: the result is saved in {saved}"
        elif saved is not None:
            kept = f"what finished is saved, marked incomplete, in {saved}"
        elif staged:
            kept = (
                "the processes that finished are staged in "
                f"{results_dir / '.staging' / experiment_id}"
            )
        elif files is not None:
            kept = f"no process had finished; the files its backend left are kept in {files}"
        else:
            kept = "no process had finished, nothing was kept"
        super().__init__(f"{reason}; {kept}")
        self.reason = reason
        self.experiment_id = experiment_id
        self.results_dir = results_dir
        self.staged = staged
        self.saved = saved
        self.files = files


class RunInterruptedError(RunFailedError):
    """The run was interrupted (Ctrl-C, SIGINT, SIGTERM): what finished is saved marked
    incomplete where it can be (``saved``), else staged as for a failure. ``signal_number``
    says which signal stopped it."""

    signal_number: int = signal.SIGINT


class StudyInterruptedError(HarnessError):
    """A study was interrupted; its manifest says what completed and a resume runs the rest.

    ``study_dir`` is the study directory to resume.
    """

    def __init__(self, message: str, *, study_dir: Path) -> None:
        super().__init__(message)
        self.study_dir = study_dir


class StudyChangedError(UsageError):
    """The study differs from the one its manifest records; resuming it anyway must be asked
    for explicitly (``force=True``), which would ``force_does``.

    ``original`` is set when the caller named a changed file while the study directory still
    holds the original (resuming with that one is the other way on).
    """

    def __init__(
        self, message: str, *, study_dir: Path, force_does: str, original: bool = False
    ) -> None:
        super().__init__(message)
        self.study_dir = study_dir
        self.force_does = force_does
        self.original = original


class OutputDirectoryError(UsageError):
    """Results cannot be written where they were to go (``directory``): it is a file, or
    cannot be created or written. Found before anything is measured."""

    def __init__(self, message: str, *, directory: Path) -> None:
        super().__init__(message)
        self.directory = directory


class StudyDirectoryError(OutputDirectoryError):
    """The directory a new study should go into cannot be created (``directory``)."""


def exit_code_for(error: LlemError) -> int:
    """The process exit code for ``error``: 2 for a mistake in what was asked (a bad config,
    an unknown backend, an impossible request), 130 for an interruption (143 for a run stopped
    by SIGTERM), 1 for a failure.

    Front ends may add their own mistakes to the 2s (an unknown experiment id, say); a
    study's run processes exit with these codes.
    """
    if isinstance(error, ConfigError | UsageError):
        return EXIT_USAGE
    if isinstance(error, RunInterruptedError) and error.signal_number == signal.SIGTERM:
        return EXIT_TERMINATED
    if isinstance(error, RunInterruptedError | StudyInterruptedError):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def describe_exception(exc: BaseException) -> str:
    """One line for ``exc``: an llem error's own message; anything else as ``Type: first
    line of its message`` (or the type alone)."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, LlemError):
        return lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

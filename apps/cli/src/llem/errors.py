"""How the ``llem`` command ends: exit codes, and the advice it adds to a library's error.

The libraries say what is wrong (and carry the data: which experiment, which store); only here
does an error learn which ``llem`` command or flag sets it right.
"""

from typing import TYPE_CHECKING

from llem_harness.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    OutputDirectoryError,
    RunFailedError,
    StudyChangedError,
    StudyInterruptedError,
    UsageError,
    WrongFileKindError,
)
from llem_harness.errors import exit_code_for as harness_exit_code
from llem_schema import BackendNotFoundError, LlemError
from llem_store.errors import (
    CorruptStoreError,
    ForeignDatabaseError,
    NoStoreError,
    NotAStoreError,
    StoreLookupError,
    StorePathError,
    UnknownExperimentError,
)

if TYPE_CHECKING:
    from llem_harness.indexing import NotIndexed

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "UsageError",
    "advice",
    "describe_os_error",
    "exit_code_for",
    "message_for",
    "reindex_advice",
]


def exit_code_for(error: LlemError) -> int:
    """2 for the user's mistakes (bad config or usage, an unknown experiment id, a missing or
    foreign results store), 130 for Ctrl-C (143 for a run stopped by SIGTERM), 1 for failures
    (a corrupt store included)."""
    if isinstance(error, StoreLookupError | ForeignDatabaseError | StorePathError):
        return EXIT_USAGE
    return harness_exit_code(error)


def advice(error: LlemError) -> str | None:
    """The ``llem`` command or flag that goes on from ``error``, where there is one."""
    if isinstance(error, BackendNotFoundError):
        built_in = (
            " (the built-in one: pip install 'llem[pytorch]')" if error.name == "pytorch" else ""
        )
        return f"install the package that provides it{built_in}; `llem backends` lists them"
    if isinstance(error, RunFailedError) and error.staged:
        return (
            f"recover them with `llem aggregate {error.experiment_id} --output {error.results_dir}`"
        )
    if isinstance(error, StudyInterruptedError):
        return f"resume with `llem study --resume {error.study_dir}`"
    if isinstance(error, StudyChangedError):
        original = (
            f"resume with the original (llem study --resume {error.study_dir}), or "
            if error.original
            else ""
        )
        return f"{original}pass --force to {error.force_does}"
    if isinstance(error, WrongFileKindError):
        command = "llem study" if error.kind == "study" else "llem run"
        return f"run it with `{command} {error.path}`"
    if isinstance(error, OutputDirectoryError):
        return "choose another --output"
    if isinstance(error, CorruptStoreError):
        return (
            f"restore a backup with `llem db restore FILE --db {error.path}`, or move it aside "
            f"and rebuild the index with `llem results import {error.path.parent} --db "
            f"{error.path}`"
        )
    if isinstance(error, NoStoreError):
        return "run `llem run`, or index existing results with `llem results import DIR`"
    if isinstance(error, NotAStoreError):
        return "point --db at an llem.db"
    if isinstance(error, UnknownExperimentError):
        return "see `llem results list --all`"
    return None


def describe_os_error(error: OSError) -> str:
    """An operating system's error as one line that names the file: ``cannot write
    results/x.csv: No space left on device``."""
    reason = error.strerror or (str(error).strip().splitlines() or [type(error).__name__])[0]
    if error.filename is None:
        return reason
    target = f"{error.filename} -> {error.filename2}" if error.filename2 else str(error.filename)
    return f"{target}: {reason}"


def message_for(error: LlemError) -> str:
    """The line ``llem`` prints for ``error``: its message, then the advice."""
    hint = advice(error)
    return f"{error}; {hint}" if hint else str(error)


def reindex_advice(failure: "NotIndexed") -> str:
    """How to index a saved result that the store could not index when it was saved."""
    return f"re-index with `llem results import {failure.directory} --db {failure.db}`"

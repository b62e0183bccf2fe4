"""Where a study keeps its files, and the locks that keep two processes off one study.

```
<output_dir>/<study_id>/
  study.yaml            a byte copy of the study file (what --resume runs)
  manifest.json         StudyManifest, rewritten atomically on every status change
  study.json            StudyResult, written when the study ends or is interrupted
  runs/run_0003.json    the spec given to run 3's child process
  runs/run_0003.log     everything that child printed (each attempt appended)
  <result directories>  one per completed run (the experiments' output_dir is the study dir)
  .staging/             raw per-process results while a run is going (kept after a failure)
  .lock                 held by the llem process running the study
```

Two locks (:mod:`llem_persistence.locks`: ``flock``, POSIX; elsewhere there is none and
nothing is checked):

- ``.lock`` is held by the ``llem study`` process for as long as it runs the study, so a
  second ``llem study --resume`` of the same directory is refused instead of running the same
  runs twice.
- each run's log is locked by the parent before the child starts, and the child inherits the
  lock with the file: while any process of that run lives, the lock is held. A resume after a
  crash waits for it before deciding whether the run saved a result.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

from llem_harness.errors import UsageError
from llem_persistence.locks import is_locked, try_exclusive
from llem_schema import MANIFEST_FILE, STUDY_RESULT_FILE, validate_experiment_id
from llem_schema.ids import MAX_EXPERIMENT_ID_LENGTH, timestamp_slug

__all__ = [
    "RUNS_DIR",
    "STUDY_FILE",
    "StudyLayout",
    "hold_study_lock",
    "is_being_run",
    "new_study_id",
    "wait_for_log_lock",
]

STUDY_FILE: Final = "study.yaml"
RUNS_DIR: Final = "runs"
LOCK_FILE: Final = ".lock"
_SUFFIX_LENGTH: Final = len("_2026-11-22T14-03-05_0a1b2c")


def new_study_id(name: str, when: datetime) -> str:
    """``<name>_<UTC YYYY-MM-DDTHH-MM-SS>_<6 hex>``, the name cut so the id stays path-safe."""
    stem = name[: MAX_EXPERIMENT_ID_LENGTH - _SUFFIX_LENGTH]
    return validate_experiment_id(f"{stem}_{timestamp_slug(when)}_{secrets.token_hex(3)}")


@dataclass(frozen=True)
class StudyLayout:
    """The paths of one study directory."""

    root: Path

    @property
    def study_id(self) -> str:
        return self.root.name

    @property
    def study_file(self) -> Path:
        return self.root / STUDY_FILE

    @property
    def manifest_file(self) -> Path:
        return self.root / MANIFEST_FILE

    @property
    def result_file(self) -> Path:
        return self.root / STUDY_RESULT_FILE

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    def spec_file(self, run_index: int) -> Path:
        return self.runs_dir / f"run_{run_index:04d}.json"

    def log_file(self, run_index: int) -> Path:
        return self.runs_dir / f"run_{run_index:04d}.log"

    def relative(self, path: Path) -> str:
        """``path`` relative to the study directory, ``/``-separated (a manifest result_path)."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()


def hold_study_lock(layout: StudyLayout) -> IO[bytes]:
    """Lock the study for this process (until the returned file is closed or it exits).

    Another process holding it is a :class:`UsageError` (exit 2) naming the study.
    """
    handle = (layout.root / LOCK_FILE).open("ab")
    if not try_exclusive(handle):
        handle.close()
        raise UsageError(
            f"study {layout.study_id} is being run by another llem process (it holds "
            f"{layout.root / LOCK_FILE}); wait for it to end, or stop it first"
        )
    return handle


def is_being_run(layout: StudyLayout) -> bool:
    """Whether an llem process holds the study's lock now (it is running the study)."""
    try:
        return is_locked(layout.root / LOCK_FILE)
    except OSError:  # an unreadable lock file (a missing one is unlocked too)
        return False


def wait_for_log_lock(layout: StudyLayout, run_index: int, *, timeout_s: float = 30.0) -> None:
    """Wait until no process of an earlier attempt at run ``run_index`` is alive.

    A child whose parent died stops by itself within a second (see :mod:`llem_harness.study.child`);
    one still alive after ``timeout_s`` is a :class:`UsageError`.
    """
    log = layout.log_file(run_index)
    if not log.exists():
        return
    deadline = time.monotonic() + timeout_s
    with log.open("ab") as handle:
        while not try_exclusive(handle):
            if time.monotonic() > deadline:
                raise UsageError(
                    f"run {run_index} of study {layout.study_id} is still running in another "
                    f"process ({log} is locked); wait for it to end, or stop it first"
                )
            time.sleep(0.1)
    # closing the file releases the lock at once

"""The harness's writes to the results store. None of them may fail a run: the result
directory is the record, the store only indexes it, and it can be re-indexed later."""

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from llem_schema import ExperimentConfig, LlemError
from llem_schema.io import file_in_the_way

__all__ = ["NotIndexed", "StoreIndex"]

logger = logging.getLogger(__name__)

_STORE_FAILURES = (LlemError, OSError, sqlite3.Error)


@dataclass(frozen=True)
class NotIndexed:
    """A saved result the store could not index: which, where, and why."""

    directory: Path
    db: Path
    reason: str

    def __str__(self) -> str:
        return f"result saved at {self.directory} but not indexed in {self.db} ({self.reason})"


class StoreIndex:
    """Records a run in the store at ``path``: running, then failed or its saved result.

    Each call opens the store, writes, and closes it, so a long run holds no connection. With
    no ``path`` nothing is recorded anywhere.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def check(self) -> None:
        """Refuse, before anything is measured, a ``path`` that cannot be a results store:
        a file that is another application's or not SQLite, a directory, a file in the way
        of its directory. It is only read. Anything else (a busy, read-only or newer store)
        lets the run go on; indexing its result reports it."""
        from llem_store.connection import check_store_file
        from llem_store.errors import ForeignDatabaseError, StoreLookupError, StorePathError

        if self.path is None:
            return
        if not self.path.exists():  # made at the first write; nothing may be in its way
            if file_in_the_way(self.path.parent) is not None:
                raise StorePathError(
                    f"cannot create {self.path}: a file is in the way of its directory",
                    path=self.path,
                )
            return
        try:
            check_store_file(self.path)
        except (ForeignDatabaseError, StoreLookupError):
            raise
        except _STORE_FAILURES as exc:
            logger.debug("cannot read the store %s to check it: %s", self.path, exc)

    def mark_running(
        self,
        experiment_id: str,
        config: ExperimentConfig,
        created: datetime,
        *,
        study_id: str | None = None,
    ) -> None:
        """Best effort: a failure here is logged; :meth:`ingest` reports it if it persists.

        ``study_id`` (registered with :meth:`register_study`) makes the run part of a study.
        """
        from llem_store import ResultStore

        if self.path is None:
            return
        try:
            with ResultStore(self.path) as store:
                store.mark_running(experiment_id, config, created=created, study_id=study_id)
        except _STORE_FAILURES as exc:
            logger.debug("cannot record %s as running in %s: %s", experiment_id, self.path, exc)

    def mark_failed(self, experiment_id: str, reason: str) -> None:
        """Best effort: the run is failing already; its error is what the user needs."""
        from llem_store import ResultStore

        if self.path is None:
            return
        try:
            with ResultStore(self.path) as store:
                store.mark_failed(experiment_id, reason)
        except _STORE_FAILURES as exc:
            logger.debug("cannot record %s as failed in %s: %s", experiment_id, self.path, exc)

    def ingest(self, directory: Path) -> NotIndexed | None:
        """Index the saved result; returns the warning to show when that failed, else None."""
        from llem_store import ResultStore

        if self.path is None:
            return None
        try:
            with ResultStore(self.path) as store:
                store.ingest(directory)
        except _STORE_FAILURES as exc:
            logger.debug("indexing %s failed", directory, exc_info=True)
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.strerror:
                reason = exc.strerror
            return NotIndexed(directory, self.path, reason)
        return None

    def register_study(
        self, study_id: str, name: str, *, design_hash: str, created: datetime, study_dir: Path
    ) -> str | None:
        """Record a study (again, on a resume); returns the warning to show when that failed."""
        from llem_store import ResultStore

        if self.path is None:
            return None
        try:
            with ResultStore(self.path) as store:
                store.register_study(
                    study_id, name, design_hash=design_hash, created=created, study_dir=study_dir
                )
        except _STORE_FAILURES as exc:
            logger.debug("cannot register study %s in %s", study_id, self.path, exc_info=True)
            return (
                f"study {study_id} not registered in {self.path} ({exc}): its runs are saved in "
                f"{study_dir}, but the store will not list them as part of the study"
            )
        return None

    def ingest_into_study(
        self, directory: Path, experiment_id: str, study_id: str
    ) -> NotIndexed | None:
        """Index the saved result of ``experiment_id`` (if it is not already) as part of
        ``study_id``; returns the warning to show when that failed, else None."""
        from llem_store import ResultStore

        if self.path is None:
            return None
        try:
            with ResultStore(self.path) as store:
                store.ingest(directory)
                store.link_to_study(experiment_id, study_id)
        except _STORE_FAILURES as exc:
            logger.debug("indexing %s failed", directory, exc_info=True)
            return NotIndexed(directory, self.path, str(exc) or type(exc).__name__)
        return None

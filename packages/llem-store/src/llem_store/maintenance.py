"""Looking after the store: check, backup, restore, vacuum, delete and prune.

Deleting never reaches outside the store's results directory: a result directory is removed
only when it lies below the directory the store is in, and never through a symlink.
"""

import contextlib
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Final

from llem_store._sqlite import RESULT_FILE, open_backup
from llem_store.errors import ReadOnlyStoreError, StoreError, StoreLookupError
from llem_store.models import (
    DeletedExperiment,
    ExperimentStatus,
    ExperimentSummary,
    IntegrityReport,
)
from llem_store.queries import ExperimentFilter, StoreQueries

__all__ = ["KEPT_BEFORE_RESTORE", "StoreMaintenance"]

KEPT_BEFORE_RESTORE: Final = 3
"""How many copies of the store as it was before a restore are kept beside it."""


class StoreMaintenance(StoreQueries):
    """Checks, copies and removals (part of :class:`~llem_store.ResultStore`)."""

    def check(
        self,
        *,
        verify_files: bool = True,
        is_active: Callable[[ExperimentSummary], bool] | None = None,
    ) -> IntegrityReport:
        """SQLite's integrity and foreign-key checks, request counts, indexed paths that
        leave the store's directory, and (``verify_files``) that every indexed
        ``result.json`` is still there and still the one indexed; one that changed and no
        longer loads is called corrupt.

        ``is_active(summary)`` says whether a process may still be running an experiment
        recorded as running (its run lock is held, or it is staged where this cannot be
        told); those it says are not are :attr:`IntegrityReport.abandoned`.
        """
        report = IntegrityReport(experiments_checked=0, problems=[])
        problems = report.problems
        with self._errors():
            connection = self._connection
            for (message,) in connection.execute("PRAGMA integrity_check"):
                if message != "ok":
                    problems.append(f"sqlite integrity: {message}")
            for table, rowid, parent, _ in connection.execute("PRAGMA foreign_key_check"):
                problems.append(f"sqlite: {table} row {rowid} points to a missing {parent} row")
            for experiment_id, expected, found in connection.execute(
                "SELECT e.experiment_id, e.requests, count(r.request_index) FROM experiments e "
                "LEFT JOIN requests r USING (experiment_id) "
                "WHERE e.status IN ('completed', 'incomplete') GROUP BY e.experiment_id "
                "HAVING e.requests != count(r.request_index)"
            ):
                problems.append(f"{experiment_id}: {found} request rows, its result has {expected}")
            indexed = connection.execute(
                "SELECT experiment_id, result_path, result_sha256 FROM experiments "
                "WHERE result_path IS NOT NULL ORDER BY experiment_id"
            ).fetchall()
        for experiment_id, stored, digest in indexed:
            if ".." in Path(stored).parts:
                report.outside.append(experiment_id)
                problems.append(
                    f"{experiment_id}: its indexed path {stored!r} leaves the store's directory"
                )
            elif verify_files:
                self._check_file(
                    experiment_id, self._absolute(stored) / RESULT_FILE, digest, report
                )
        if is_active is not None:
            report.abandoned.extend(s.experiment_id for s in self.running() if not is_active(s))
        return replace(report, experiments_checked=len(indexed))

    @staticmethod
    def _check_file(experiment_id: str, file: Path, digest: str, report: IntegrityReport) -> None:
        try:
            found = hashlib.sha256(file.read_bytes()).hexdigest()
        except (FileNotFoundError, NotADirectoryError):
            report.missing.append(experiment_id)
            report.problems.append(f"{experiment_id}: {file} is missing (moved or deleted)")
            return
        except OSError as exc:
            report.unreadable.append(experiment_id)
            report.problems.append(f"{experiment_id}: cannot read {file}: {exc.strerror or exc}")
            return
        if found == digest:
            return
        reason = _unreadable(file)
        if reason is None:
            report.changed.append(experiment_id)
            report.problems.append(f"{experiment_id}: {file} changed since it was indexed")
        else:
            report.corrupt.append(experiment_id)
            report.problems.append(f"{experiment_id}: {file} is corrupt ({reason})")

    def result_dirs(self) -> list[tuple[str, Path]]:
        """Every indexed experiment with a result directory: (experiment id, directory)."""
        with self._errors():
            rows = self._connection.execute(
                "SELECT experiment_id, result_path FROM experiments "
                "WHERE result_path IS NOT NULL ORDER BY experiment_id"
            ).fetchall()
        return [(experiment_id, self._absolute(stored)) for experiment_id, stored in rows]

    def backup(self, target: str | PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy the store to ``target`` while it is in use (SQLite's online backup).

        The copy is written beside ``target`` and renamed into place, so ``target`` is either
        a complete backup or untouched.
        """
        if self.migrated_in_memory:
            raise ReadOnlyStoreError(
                f"{self.path} is read-only and at store schema {self.schema_version}, read "
                "through a copy migrated in memory: copy the file itself instead",
                path=self.path,
            )
        destination = Path(target)
        if destination.is_dir():
            destination = destination / self.path.name
        if destination.exists() and not overwrite:
            raise StoreLookupError(f"{destination} exists; choose another file or overwrite it")
        if destination.absolute() == self.path.absolute():
            raise StoreLookupError(f"{destination} is the store itself")
        if not destination.parent.is_dir():
            state = "is a file" if destination.parent.exists() else "is missing"
            raise StoreLookupError(f"cannot write {destination}: {destination.parent} {state}")
        self._copy(self._connection, destination)
        return destination

    def restore(self, source: str | PathLike[str]) -> Path:
        """Replace the store's contents with the backup ``source``; returns where the
        store's previous contents were kept (``llem.db.before-restore-<time>``; the newest
        :data:`KEPT_BEFORE_RESTORE` of these are kept, older ones removed).

        ``source`` must be an llem store that passes SQLite's integrity check, and not the
        store itself; result directories are not touched.
        """
        origin = Path(source)
        if not origin.is_file():
            raise StoreLookupError(f"no backup at {origin}")
        if origin.resolve() == self.path.resolve():
            raise StoreLookupError(f"{origin} is the store itself: there is nothing to restore")
        with contextlib.closing(open_backup(origin, self.timeout_s)) as backup, self._errors():
            self._require_writable()
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            kept = self.backup(self.path.with_name(f"{self.path.name}.before-restore-{stamp}"))
            backup.backup(self._connection)
        with self._errors():
            self._upgrade()
        made = re.compile(re.escape(self.path.name) + r"\.before-restore-\d{8}T\d{6}\.\d{6}")
        copies = sorted(
            path
            for path in self.path.parent.iterdir()
            if made.fullmatch(path.name)
            and path.resolve() not in (kept.resolve(), origin.resolve())
        )
        for old in copies[: max(0, len(copies) - (KEPT_BEFORE_RESTORE - 1))]:
            old.unlink(missing_ok=True)
        return kept

    def vacuum(self) -> tuple[int, int]:
        """Checkpoint the WAL and rebuild the file; returns its size before and after, bytes."""
        self._require_writable()
        before = self._size()
        with self._errors():
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._connection.execute("VACUUM")
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, self._size()

    # -- removal ---------------------------------------------------------------------------

    def retention(
        self,
        *,
        statuses: Sequence[ExperimentStatus] | None,
        older_than: datetime,
    ) -> list[ExperimentSummary]:
        """Experiments started before ``older_than`` with one of ``statuses``, that belong to
        no study (a study's runs go with the study, or when named): what a retention rule
        would delete, oldest first."""
        candidates = self.list_experiments(
            ExperimentFilter(statuses=statuses, until=older_than), sort="created", descending=False
        )
        return [summary for summary in candidates if summary.study_id is None]

    def delete(self, experiment_id: str) -> DeletedExperiment:
        """Remove an experiment: its rows, and its result directory when that lies below the
        store's directory (one elsewhere, or reached through a symlink, is left in place and
        named in :attr:`DeletedExperiment.kept`). The directory is first moved aside, and back
        if the rows cannot go, so a failure leaves both as they were."""
        summary = self.get(experiment_id)
        self._require_writable()
        directory = summary.result_path
        if directory is not None and directory.is_symlink() and self._is_ours(directory.parent):
            # the link is the store's to remove (else an import brings the result back); what
            # it points to is not
            target = directory.resolve()
            with self._errors(), self._transaction():
                self._remove_rows(summary.experiment_id)
            directory.unlink()
            return DeletedExperiment(summary.experiment_id, None, target)
        if directory is None or not directory.exists() or not self._inside(directory):
            with self._errors(), self._transaction():
                self._remove_rows(summary.experiment_id)
            kept = directory if directory is not None and directory.exists() else None
            return DeletedExperiment(summary.experiment_id, None, kept)
        try:
            holder = Path(tempfile.mkdtemp(prefix=".deleting-", dir=directory.parent))
            aside = directory.replace(holder / directory.name)
        except OSError as exc:
            raise StoreError(f"cannot delete {directory}: {exc.strerror or exc}") from None
        try:
            with self._errors(), self._transaction():
                self._remove_rows(summary.experiment_id)
        except BaseException:
            aside.replace(directory)
            holder.rmdir()
            raise
        shutil.rmtree(holder)
        return DeletedExperiment(summary.experiment_id, directory)

    def delete_study(self, study: str) -> list[DeletedExperiment]:
        """Remove a study: each of its experiments (as :meth:`delete`), then its record and
        its directory (when below the store's directory)."""
        record = self.study(study)
        self._require_writable()
        runs = self.list_experiments(ExperimentFilter(statuses=None, study=record.study_id))
        deleted = [self.delete(run.experiment_id) for run in runs]
        with self._errors(), self._transaction():
            self._connection.execute("DELETE FROM studies WHERE study_id = ?", (record.study_id,))
        directory = record.study_dir
        if directory is not None and directory.is_dir() and self._inside(directory):
            shutil.rmtree(directory)
        return deleted

    def prune(self, *, dry_run: bool = False) -> list[str]:
        """Remove the rows of experiments whose result directory is gone; returns their ids.

        Experiments without a directory (running, failed) are kept, and so is one whose
        directory cannot be looked at, or that lies outside the store's directory with its
        parent gone too (a drive not mounted).
        Each row is checked again as it is removed, so one re-indexed meanwhile stays.
        """
        with self._errors():
            rows = self._connection.execute(
                "SELECT experiment_id, result_path FROM experiments WHERE result_path IS NOT NULL "
                "ORDER BY experiment_id"
            ).fetchall()
        gone = [(i, stored) for i, stored in rows if self._gone(self._absolute(stored))]
        if not gone or dry_run:
            return [experiment_id for experiment_id, _ in gone]
        removed = []
        with self._errors(), self._transaction():
            for experiment_id, stored in gone:
                if (
                    self._gone(self._absolute(stored))
                    and self._connection.execute(
                        "DELETE FROM experiments WHERE experiment_id = ? AND result_path = ?",
                        (experiment_id, stored),
                    ).rowcount
                ):
                    removed.append(experiment_id)
        return removed

    def _gone(self, directory: Path) -> bool:
        try:
            (directory / RESULT_FILE).stat()
        except (FileNotFoundError, NotADirectoryError):
            # elsewhere, a whole tree missing is more likely a drive not mounted than deleted
            return self._inside(directory) or directory.parent.is_dir()
        except OSError:
            return False  # there, perhaps, but not for this user to see
        return False

    def _remove_rows(self, experiment_id: str) -> None:
        """The experiment's rows; its requests and warnings go with it (``ON DELETE CASCADE``)."""
        self._connection.execute(
            "DELETE FROM experiments WHERE experiment_id = ?", (experiment_id,)
        )

    def _is_ours(self, directory: Path) -> bool:
        """Whether ``directory`` is the store's directory or lies below it."""
        resolved = directory.resolve()
        return resolved.is_relative_to(self.results_dir.resolve())

    def _inside(self, directory: Path) -> bool:
        """Whether ``directory`` lies below the store's directory, not through a symlink."""
        below = directory.resolve() != self.results_dir.resolve()
        return below and not directory.is_symlink() and self._is_ours(directory)


def _unreadable(file: Path) -> str | None:
    """Why ``file`` no longer loads as a result, or ``None`` if it does."""
    from llem_schema import ExperimentResult, LlemError

    try:
        ExperimentResult.from_json(file)
    except (OSError, ValueError, LlemError) as exc:
        return str(exc).splitlines()[0][:200]
    return None

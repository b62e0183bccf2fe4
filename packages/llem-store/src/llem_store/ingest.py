"""Writing the store: results indexed from their directories, runs and studies recorded.

The store indexes results; it never replaces them. Every row of a saved result comes from its
``result.json`` and can be rebuilt from it (:meth:`StoreIngest.import_tree`), study membership
included (from the studies' manifests). Each result's rows commit together or not at all.
"""

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llem_store._sqlite import RESULT_FILE, result_dirs
from llem_store.connection import StoreConnection
from llem_store.errors import (
    DuplicateResultError,
    StoreError,
    StoreLookupError,
    UnreadableResultError,
)
from llem_store.models import ImportReport, IngestOutcome, utc_text

if TYPE_CHECKING:
    from llem_schema import ExperimentConfig, ExperimentResult

__all__ = ["StoreIngest"]

logger = logging.getLogger(__name__)


class StoreIngest(StoreConnection):
    """Indexing results and recording runs and studies (part of
    :class:`~llem_store.ResultStore`)."""

    def ingest(self, result_dir: str | PathLike[str]) -> IngestOutcome:
        """Index the result in ``result_dir`` (or its ``result.json``): all rows or none.

        Idempotent: a result already indexed from the same path with the same content changes
        nothing. A result moved elsewhere is re-pointed; a second live copy of an indexed
        experiment is refused with a :class:`DuplicateResultError` naming both places.
        """
        from llem_schema import ExperimentResult

        directory = self._result_dir(result_dir)
        file = directory / RESULT_FILE
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError as exc:
            raise UnreadableResultError(f"cannot read {file}: {exc.strerror or exc}") from None
        stored = self._stored_path(directory)
        with self._errors():
            row = self._connection.execute(
                "SELECT result_sha256 FROM experiments WHERE result_path = ?", (stored,)
            ).fetchone()
        if row is not None and row[0] == digest:
            return IngestOutcome.UNCHANGED
        result = ExperimentResult.from_json(file)
        with self._errors():
            return self._index(result, directory, stored, digest)

    def import_tree(
        self,
        root: str | PathLike[str],
        *,
        on_result: Callable[[Path, int, int], None] | None = None,
    ) -> ImportReport:
        """Index every result directory below ``root`` (``root`` itself may be one), and the
        study membership the study manifests below it record.

        Hidden directories (``.staging``) and directories without ``result.json`` (a save that
        was interrupted) are passed over. A result or manifest that cannot be read (corrupt, a
        copy of a result already indexed) is skipped with a logged warning that names it; it
        is listed in the report. ``on_result(directory, done, total)`` is called after each
        result directory.
        """
        from llem_schema import LlemError

        top = Path(root)
        if not top.is_dir():
            raise StoreLookupError(f"{top} is not a directory")
        manifests: list[Path] = []
        directories = sorted(result_dirs(top, manifests=manifests))
        report = ImportReport()
        for done, directory in enumerate(directories, start=1):
            try:
                outcome = self.ingest(directory)
            except LlemError as exc:
                if isinstance(exc, StoreError) and not isinstance(
                    exc, DuplicateResultError | StoreLookupError
                ):
                    raise  # the store itself failed: stop, rather than skip every result
                logger.warning("skipped %s: %s", directory, exc)
                report.skipped.append((directory, str(exc)))
            else:
                bucket = {
                    IngestOutcome.ADDED: report.added,
                    IngestOutcome.UPDATED: report.updated,
                    IngestOutcome.UNCHANGED: report.unchanged,
                }[outcome]
                bucket.append(directory)
            if on_result is not None:
                on_result(directory, done, len(directories))
        for study_dir in sorted(manifests):
            self._restore_study(study_dir, report)
        return report

    def mark_running(
        self,
        experiment_id: str,
        config: "ExperimentConfig",
        *,
        created: datetime | None = None,
        study_id: str | None = None,
    ) -> None:
        """Record a run that has started and has no result yet (``status = 'running'``),
        as part of the study ``study_id`` (registered first with :meth:`register_study`)."""
        from llem_store.rows import config_row

        row = config_row(
            experiment_id, config, status="running", created=created or datetime.now(UTC)
        )
        with self._errors(), self._transaction():
            self._insert_experiment(row | {"study_id": study_id}, conflict="DO NOTHING")

    def mark_failed(self, experiment_id: str, error: str) -> bool:
        """Mark a running experiment failed, with the reason; a saved result is left as is.
        Returns whether a running experiment was marked."""
        with self._errors(), self._transaction():
            marked = self._connection.execute(
                "UPDATE experiments SET status = 'failed', error = ? "
                "WHERE experiment_id = ? AND status = 'running'",
                (error, experiment_id),
            ).rowcount
        return bool(marked)

    def register_study(
        self,
        study_id: str,
        name: str,
        *,
        design_hash: str | None = None,
        created: datetime | None = None,
        study_dir: str | PathLike[str] | None = None,
    ) -> None:
        """Record a study (again: its name, design hash and directory are updated)."""
        stored = None if study_dir is None else self._stored_path(Path(study_dir))
        with self._errors(), self._transaction():
            self._connection.execute(
                "INSERT INTO studies (study_id, name, design_hash, created_at, study_path) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (study_id) DO UPDATE SET name = "
                "excluded.name, design_hash = excluded.design_hash, study_path = "
                "excluded.study_path",
                (study_id, name, design_hash, utc_text(created or datetime.now(UTC)), stored),
            )

    def link_to_study(self, experiment_id: str, study_id: str) -> None:
        """Make an indexed experiment part of a registered study."""
        with self._errors(), self._transaction():
            found = self._connection.execute(
                "UPDATE experiments SET study_id = ? WHERE experiment_id = ?",
                (study_id, experiment_id),
            ).rowcount
        if not found:
            raise StoreLookupError(f"no experiment {experiment_id!r} in {self.path}")

    # -- internals -------------------------------------------------------------------------

    def _restore_study(self, study_dir: Path, report: ImportReport) -> None:
        """Register the study of the manifest in ``study_dir`` and link its indexed runs."""
        from llem_schema import LlemError, StudyManifest

        try:
            manifest = StudyManifest.load(study_dir)
        except LlemError as exc:
            logger.warning("skipped the study manifest in %s: %s", study_dir, exc)
            report.skipped.append((study_dir, str(exc)))
            return
        ids = [entry.experiment_id for entry in manifest.entries if entry.experiment_id]
        self.register_study(
            manifest.study_id,
            manifest.study_name,
            design_hash=manifest.design_hash,
            created=manifest.created_at,
            study_dir=study_dir,
        )
        with self._errors(), self._transaction():
            linked = sum(
                self._connection.execute(
                    "UPDATE experiments SET study_id = ? WHERE experiment_id = ?",
                    (manifest.study_id, experiment_id),
                ).rowcount
                for experiment_id in ids
            )
        report.studies.append((study_dir, linked))

    def _index(
        self, result: "ExperimentResult", directory: Path, stored: str, digest: str
    ) -> IngestOutcome:
        from llem_schema import ResultFormatError
        from llem_store.rows import experiment_row, requests_table_rows, warnings_table_rows

        row = experiment_row(result)
        requests = requests_table_rows(result)
        warnings = warnings_table_rows(result)
        connection = self._connection
        with self._transaction():
            existing = connection.execute(
                "SELECT result_path, result_sha256, study_id FROM experiments "
                "WHERE experiment_id = ?",
                (result.experiment_id,),
            ).fetchone()
            outcome = IngestOutcome.ADDED
            study_id = None
            if existing is not None:
                old_path, old_digest, study_id = existing
                if old_path == stored and old_digest == digest:
                    return IngestOutcome.UNCHANGED
                if (
                    old_path is not None
                    and old_path != stored
                    and self._holds(old_path, old_digest)
                ):
                    raise DuplicateResultError(
                        f"{directory}: experiment {result.experiment_id} is already indexed from "
                        f"{self._absolute(old_path)}; this copy is not indexed (remove one of "
                        "them, or re-index after moving it)"
                    )
                connection.execute(
                    "DELETE FROM experiments WHERE experiment_id = ?", (result.experiment_id,)
                )
                outcome = IngestOutcome.UPDATED
            # another experiment indexed from this same path earlier (the directory was replaced)
            connection.execute("DELETE FROM experiments WHERE result_path = ?", (stored,))
            row |= {"study_id": study_id, "result_path": stored, "result_sha256": digest}
            self._insert_experiment(row)
            try:
                connection.executemany(
                    "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", requests
                )
            except sqlite3.IntegrityError:
                raise ResultFormatError(
                    f"{directory}: two requests of process and request index "
                    f"{_first_duplicate(requests)} in one result; not indexed"
                ) from None
            connection.executemany(
                "INSERT INTO warnings (experiment_id, position, source, message, code) "
                "VALUES (?, ?, ?, ?, ?)",
                warnings,
            )
        return outcome

    def _insert_experiment(self, row: dict[str, Any], *, conflict: str | None = None) -> None:
        row = row | {"indexed_at": datetime.now(UTC).isoformat(timespec="microseconds")}
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        suffix = f" ON CONFLICT (experiment_id) {conflict}" if conflict else ""
        self._connection.execute(
            f"INSERT INTO experiments ({columns}) VALUES ({marks}){suffix}", tuple(row.values())
        )

    def _result_dir(self, path: str | PathLike[str]) -> Path:
        candidate = Path(path)
        if candidate.name == RESULT_FILE and candidate.is_file():
            candidate = candidate.parent
        if not candidate.is_dir():
            raise StoreLookupError(f"no result directory at {candidate}")
        if not (candidate / RESULT_FILE).is_file():
            raise StoreLookupError(
                f"{candidate} holds no {RESULT_FILE}: not a result directory (or its save "
                "was interrupted)"
            )
        return candidate.absolute()

    def _holds(self, stored: str, digest: str | None) -> bool:
        """Whether the indexed directory ``stored`` still holds the indexed result."""
        found = self._result_digest(stored)
        return found is not None and found == digest


def _first_duplicate(requests: Sequence[tuple[object, ...]]) -> tuple[object, object] | None:
    """The first (process, request index) pair that occurs twice in ``requests``."""
    seen: set[tuple[object, object]] = set()
    for row in requests:
        key = (row[1], row[2])
        if key in seen:
            return key
        seen.add(key)
    return None

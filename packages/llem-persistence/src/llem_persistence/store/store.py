""":class:`ResultStore`: the SQLite index of result directories.

The store indexes results; it never replaces them. Every row of a saved result comes from its
``result.json`` and can be rebuilt from it (:meth:`ResultStore.import_tree`). One file, WAL
journal, a busy timeout and ``BEGIN IMMEDIATE`` transactions, so several processes can write at
once without "database is locked" failures; each result's rows commit together or not at all.
"""

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from llem_persistence.errors import (
    DuplicateResultError,
    NoStoreError,
    NotAStoreError,
    StoreError,
    StoreLookupError,
    UnknownExperimentError,
    UnsafePathError,
)
from llem_persistence.store._schema import (
    APPLICATION_ID,
    MIGRATIONS,
    Migration,
    migrate,
)
from llem_persistence.store._sqlite import (
    RESULT_FILE,
    SQLITE_HEADER,
    aware,
    escape_like,
    is_busy,
    like_prefix,
    open_backup,
    result_dirs,
    store_error,
)
from llem_persistence.store.models import (
    EXPERIMENT_STATUSES,
    SUMMARY_FIELDS,
    ExperimentStatus,
    ExperimentSummary,
    ImportReport,
    IngestOutcome,
    IntegrityReport,
    StudySummary,
    utc_text,
)
from llem_schema.errors import ResultFormatError

if TYPE_CHECKING:
    from llem_schema import ExperimentConfig, ExperimentResult, LatencyStats

__all__ = ["DEFAULT_STORE_FILE", "SORT_KEYS", "ResultStore"]

logger = logging.getLogger(__name__)

DEFAULT_STORE_FILE: Final = "llem.db"
"""The store's file name inside a results directory: ``results/llem.db``."""


SORT_KEYS: Final[dict[str, tuple[str, bool]]] = {
    "created": ("created_at", True),
    "model": ("model", False),
    "backend": ("backend", False),
    "status": ("status", False),
    "duration": ("duration_s", True),
    "energy": ("total_energy_j", True),
    "tokens_per_j": ("output_tokens_per_j", True),
    "throughput": ("output_tokens_per_s", True),
    "ttft": ("ttft_median_ms", False),
    "e2e": ("e2e_median_ms", False),
}
"""``sort`` names of :meth:`ResultStore.list_experiments`: (column, descending by default)."""

_SUMMARY_COLUMNS: Final = ", ".join(SUMMARY_FIELDS)
_NULLABLE: Final = frozenset(
    column
    for column, _ in SORT_KEYS.values()
    if column not in {"created_at", "model", "backend", "status"}
)

_REQUEST_METRICS: Final = ("ttft_ms", "e2e_ms", "tpot_ms", "itl_max_ms")


class ResultStore:
    """The SQLite index of result directories (default ``results/llem.db``).

    >>> with ResultStore("results/llem.db") as store:
    ...     store.import_tree("results")
    ...     best = store.list_experiments(sort="tokens_per_j", limit=5)

    ``create=False`` opens an existing store only (a missing file is a
    :class:`StoreLookupError`). An older store is migrated on opening, after a copy of it is
    kept beside it (``llem.db.v1.bak``); a foreign database or a store written by a newer llem
    is refused.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        create: bool = True,
        timeout_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._base = self.path.absolute().parent
        if not self.path.exists():
            if not create:
                raise NoStoreError(f"no results store at {self.path}", path=self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        elif self.path.is_dir():
            raise StoreLookupError(f"{self.path} is a directory, not a results store")
        else:
            self._check_header()
        with self._errors():
            self._connection = sqlite3.connect(
                self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
        try:
            with self._errors():
                self._prepare(create=create)
        except BaseException:
            self._connection.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite when the last one closes)."""
        self._connection.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The store's schema version (``PRAGMA user_version``)."""
        with self._errors():
            return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
        """Apply pending ``migrations`` (opening applies llem's own too); returns those applied.

        A store already at a version is kept as ``llem.db.v<version>.bak`` before it changes.
        """
        with self._errors():
            return self._upgrade(migrations)

    # -- writing ---------------------------------------------------------------------------

    def ingest(self, result_dir: str | PathLike[str]) -> IngestOutcome:
        """Index the result in ``result_dir`` (or its ``result.json``): all rows or none.

        Idempotent: a result already indexed from the same path with the same content changes
        nothing. A result moved elsewhere is re-pointed; a second live copy of an indexed
        experiment is refused with a :class:`StoreError` naming both places.
        """
        from llem_schema import ExperimentResult

        directory = self._result_dir(result_dir)
        file = directory / RESULT_FILE
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError as exc:
            raise StoreError(f"cannot read {file}: {exc.strerror or exc}") from None
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
        """Index every result directory below ``root`` (``root`` itself may be one).

        Hidden directories (``.staging``) and directories without ``result.json`` (a save that
        was interrupted) are passed over. A result that cannot be indexed (corrupt, a copy of
        one already indexed) is skipped with a logged warning that names it; it is listed in
        the report. ``on_result(directory, done, total)`` is called after each directory.
        """
        from llem_schema import LlemError

        top = Path(root)
        if not top.is_dir():
            raise StoreLookupError(f"{top} is not a directory")
        directories = sorted(result_dirs(top))
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
        from llem_persistence.store._rows import config_row

        row = config_row(
            experiment_id, config, status="running", created=created or datetime.now(UTC)
        )
        with self._errors(), self._transaction():
            self._insert_experiment(row | {"study_id": study_id}, conflict="DO NOTHING")

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
                (
                    study_id,
                    name,
                    design_hash,
                    utc_text(created or datetime.now(UTC)),
                    stored,
                ),
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

    def studies(self) -> list[StudySummary]:
        """Every registered study with how many of its experiments are indexed, newest first."""
        with self._errors():
            rows = self._connection.execute(
                "SELECT s.study_id, s.name, s.design_hash, s.created_at, s.study_path, "
                "count(e.experiment_id), count(e.result_path) FROM studies s "
                "LEFT JOIN experiments e USING (study_id) GROUP BY s.study_id "
                "ORDER BY s.created_at DESC, s.study_id DESC"
            ).fetchall()
        return [
            StudySummary(
                study_id=study_id,
                name=name,
                design_hash=design_hash,
                created_at=datetime.fromisoformat(created),
                study_dir=None if path is None else self._absolute(path),
                experiments=experiments,
                with_results=with_results,
            )
            for study_id, name, design_hash, created, path, experiments, with_results in rows
        ]

    def mark_failed(self, experiment_id: str, error: str) -> None:
        """Mark a running experiment failed, with the reason; a saved result is left as is."""
        with self._errors(), self._transaction():
            self._connection.execute(
                "UPDATE experiments SET status = 'failed', error = ? "
                "WHERE experiment_id = ? AND status = 'running'",
                (error, experiment_id),
            )

    # -- reading ---------------------------------------------------------------------------

    def list_experiments(
        self,
        *,
        statuses: Sequence[ExperimentStatus] | None = ("completed",),
        model: str | None = None,
        backend: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_output_tokens_per_j: float | None = None,
        study: str | None = None,
        warning: str | None = None,
        sort: str = "created",
        descending: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ExperimentSummary]:
        """Experiments matching every filter given, sorted, one page of them.

        ``statuses=None`` means any status; ``model`` and ``backend`` match a case-insensitive
        part of the name; ``study`` is a study's id or name; ``warning`` a warning code the
        experiment has (``llem_schema.WARNING_CODES``); ``since``/``until`` bound the start time; ``sort`` is a key of
        :data:`SORT_KEYS` (missing values last), ``descending`` defaults to the key's natural
        direction (newest, most efficient, fastest first).
        """
        if sort not in SORT_KEYS:
            raise StoreLookupError(
                f"unknown sort key {sort!r}: choose one of {', '.join(SORT_KEYS)}"
            )
        if (limit is not None and limit < 0) or offset < 0:
            raise StoreLookupError("limit and offset must not be negative")
        column, natural = SORT_KEYS[sort]
        direction = "DESC" if (natural if descending is None else descending) else "ASC"
        where, parameters = self._filters(
            statuses, model, backend, since, until, min_output_tokens_per_j, study, warning
        )
        # SQLite sorts NULL first ascending and last descending: only an ascending sort on a
        # column that can be NULL needs the extra term, which would keep SQLite off the index
        nulls_last = f"{column} IS NULL, " if direction == "ASC" and column in _NULLABLE else ""
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM experiments{where} "
            f"ORDER BY {nulls_last}{column} {direction}, experiment_id {direction}"
        )
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            parameters += [-1 if limit is None else limit, offset]
        with self._errors():
            rows = self._connection.execute(sql, parameters).fetchall()
        return [self._summary(row) for row in rows]

    def count_experiments(
        self,
        *,
        statuses: Sequence[ExperimentStatus] | None = ("completed",),
        model: str | None = None,
        backend: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_output_tokens_per_j: float | None = None,
        study: str | None = None,
        warning: str | None = None,
    ) -> int:
        """How many experiments :meth:`list_experiments` would return without a limit."""
        where, parameters = self._filters(
            statuses, model, backend, since, until, min_output_tokens_per_j, study, warning
        )
        with self._errors():
            row = self._connection.execute(
                f"SELECT count(*) FROM experiments{where}", parameters
            ).fetchone()
        return int(row[0])

    def get(self, experiment_id: str) -> ExperimentSummary:
        """One experiment, by its id or a unique beginning of it."""
        with self._errors():
            rows = self._connection.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM experiments WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
            if not rows:
                rows = self._connection.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM experiments "
                    "WHERE experiment_id LIKE ? ESCAPE '\\' ORDER BY experiment_id LIMIT 6",
                    (like_prefix(experiment_id),),
                ).fetchall()
        if not rows:
            raise UnknownExperimentError(
                f"no experiment {experiment_id!r} in {self.path}", experiment_id=experiment_id
            )
        if len(rows) > 1:
            names = ", ".join(row[0] for row in rows[:5])
            raise StoreLookupError(
                f"{experiment_id!r} matches several experiments ({names}"
                f"{', ...' if len(rows) > 5 else ''}): give more of the id"
            )
        return self._summary(rows[0])

    def compare(self, experiment_ids: Sequence[str]) -> list[ExperimentSummary]:
        """Several experiments side by side, in the order asked."""
        if not experiment_ids:
            raise StoreLookupError("compare needs at least one experiment id")
        return [self.get(experiment_id) for experiment_id in experiment_ids]

    def typical_durations(self, config_hashes: Sequence[str]) -> dict[str, float]:
        """The median measurement-window length, s, of the completed experiments of each
        measurement config hash that has any (for estimating how long a study will take)."""
        durations: dict[str, list[float]] = {}
        with self._errors():
            for start in range(0, len(config_hashes), 500):
                chunk = list(config_hashes[start : start + 500])
                rows = self._connection.execute(
                    "SELECT config_hash, duration_s FROM experiments WHERE status = 'completed' "
                    f"AND duration_s IS NOT NULL AND config_hash IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for config_hash, duration_s in rows:
                    durations.setdefault(config_hash, []).append(float(duration_s))
        return {key: statistics.median(values) for key, values in durations.items()}

    def config(self, experiment_id: str) -> dict[str, Any]:
        """The experiment's effective configuration."""
        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            (text,) = self._connection.execute(
                "SELECT config_json FROM experiments WHERE experiment_id = ?", (full_id,)
            ).fetchone()
        config: dict[str, Any] = json.loads(text)
        return config

    def warnings(self, experiment_id: str) -> list[tuple[str, str, str]]:
        """The experiment's warnings as ``(source, code, message)``, source being
        ``measurement`` or ``aggregation``."""
        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            rows = self._connection.execute(
                "SELECT source, code, message FROM warnings WHERE experiment_id = ? "
                "ORDER BY position",
                (full_id,),
            ).fetchall()
        return [(str(source), str(code), str(message)) for source, code, message in rows]

    def request_stats(self, experiment_id: str) -> "dict[str, LatencyStats | None]":
        """Statistics over the experiment's request rows: ``ttft_ms``, ``e2e_ms``, ``tpot_ms``
        (each request's mean inter-token gap) and ``itl_max_ms`` (each request's longest gap)."""
        from llem_schema import LatencyStats

        full_id = self.get(experiment_id).experiment_id
        with self._errors():
            rows = self._connection.execute(
                f"SELECT {', '.join(_REQUEST_METRICS)} FROM requests WHERE experiment_id = ?",
                (full_id,),
            ).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in _REQUEST_METRICS]
        return {
            name: LatencyStats.from_values(v for v in values if v is not None)
            for name, values in zip(_REQUEST_METRICS, columns, strict=True)
        }

    # -- maintenance -----------------------------------------------------------------------

    def check(self, *, verify_files: bool = True) -> IntegrityReport:
        """SQLite's integrity and foreign-key checks, request counts, and (``verify_files``)
        that every indexed result directory still exists and still matches its hash."""
        problems: list[str] = []
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
        if verify_files:
            for experiment_id, stored, digest in indexed:
                directory = self._absolute(stored)
                file = directory / RESULT_FILE
                try:
                    found_digest = hashlib.sha256(file.read_bytes()).hexdigest()
                except OSError:
                    problems.append(f"{experiment_id}: {file} is missing (moved or deleted)")
                    continue
                if found_digest != digest:
                    problems.append(f"{experiment_id}: {file} changed since it was indexed")
        return IntegrityReport(experiments_checked=len(indexed), problems=problems)

    def backup(self, target: str | PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy the store to ``target`` while it is in use (SQLite's online backup).

        The copy is written beside ``target`` and renamed into place, so ``target`` is either
        a complete backup or untouched.
        """
        destination = Path(target)
        if destination.is_dir():
            destination = destination / self.path.name
        if destination.exists() and not overwrite:
            raise StoreLookupError(f"{destination} exists; choose another file or overwrite it")
        if destination.absolute() == self.path.absolute():
            raise StoreLookupError(f"{destination} is the store itself")
        if not destination.parent.is_dir():
            raise StoreLookupError(f"cannot write {destination}: {destination.parent} is missing")
        self._copy(self._connection, destination)
        return destination

    def _copy(self, source: sqlite3.Connection, destination: Path) -> None:
        """Write ``source``'s database to ``destination`` beside it, then rename it there."""
        temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
        try:
            try:
                copy = sqlite3.connect(temporary)
            except sqlite3.Error as exc:
                raise store_error(destination, exc, self.timeout_s) from exc
            with contextlib.closing(copy):
                with self._errors():
                    source.backup(copy)
                # a rollback-journal file: it opens read-only without -wal/-shm beside it
                copy.execute("PRAGMA journal_mode = DELETE")
            temporary.replace(destination)
        finally:
            temporary.unlink(missing_ok=True)

    def restore(self, source: str | PathLike[str]) -> Path:
        """Replace the store's contents with the backup ``source``; returns where the
        store's previous contents were kept (``llem.db.before-restore-<time>``).

        ``source`` must be an llem store that passes SQLite's integrity check; result
        directories are not touched.
        """
        origin = Path(source)
        if not origin.is_file():
            raise StoreLookupError(f"no backup at {origin}")
        with contextlib.closing(open_backup(origin, self.timeout_s)) as backup, self._errors():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            kept = self.backup(self.path.with_name(f"{self.path.name}.before-restore-{stamp}"))
            backup.backup(self._connection)
        with self._errors():
            self._upgrade()
        return kept

    def vacuum(self) -> tuple[int, int]:
        """Checkpoint the WAL and rebuild the file; returns its size before and after, bytes."""
        before = self._size()
        with self._errors():
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._connection.execute("VACUUM")
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, self._size()

    # -- internals -------------------------------------------------------------------------

    def _check_header(self) -> None:
        try:
            with self.path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if header and header != SQLITE_HEADER:
            raise NotAStoreError(
                f"{self.path} is not an llem results store (not an SQLite file)", path=self.path
            )

    def _prepare(self, *, create: bool) -> None:
        connection = self._connection
        connection.execute("PRAGMA foreign_keys = ON")
        # one read transaction: another process may be creating the store right now
        connection.execute("BEGIN")
        try:
            application_id = connection.execute("PRAGMA application_id").fetchone()[0]
            tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            connection.execute("COMMIT")
        if application_id == 0:
            if tables:
                raise NotAStoreError(
                    f"{self.path} is an SQLite database of another application, not an llem "
                    "results store",
                    path=self.path,
                )
            if not create:
                raise NoStoreError(
                    f"{self.path} is an empty file, not a results store yet", path=self.path
                )
        elif application_id != APPLICATION_ID:
            raise NotAStoreError(
                f"{self.path} is a database of another application (application_id "
                f"{application_id:#x}), not an llem results store",
                path=self.path,
            )
        self._enable_wal()
        connection.execute("PRAGMA synchronous = NORMAL")
        self._upgrade()

    def _enable_wal(self) -> None:
        """Switch to WAL; another process doing the same at the same moment gets SQLITE_BUSY,
        which the busy timeout does not cover here, so wait for it explicitly."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                mode = self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if str(mode).lower() != "wal":
                logger.warning("%s: WAL journal unavailable (%s)", self.path, mode)
            return

    def _upgrade(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
        version = self._user_version()
        latest = migrations[-1].version
        if version > latest:
            raise StoreError(
                f"{self.path} was written by a newer llem (store schema {version}, this llem "
                f"knows up to {latest}): upgrade llem to read it"
            )
        if version == latest:
            return []
        with self._transaction():
            version = self._user_version()  # another process may have migrated meanwhile
            if 0 < version < latest:
                # the copy comes through a second connection: this one holds the write lock,
                # and in WAL mode a reader sees the store as it was before the migration
                kept = self.path.with_name(f"{self.path.name}.v{version}.bak")
                with contextlib.closing(
                    sqlite3.connect(self.path, timeout=self.timeout_s)
                ) as reader:
                    self._copy(reader, kept)
                logger.info(
                    "migrating %s from store schema %d; kept a copy at %s", self.path, version, kept
                )
            return migrate(self._connection, version, migrations)

    def _user_version(self) -> int:
        return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: take the write lock up front, so two writers queue on the busy
        timeout instead of one failing when it upgrades a read lock."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn sqlite3's errors into one-line :class:`StoreError` messages that say what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, self.timeout_s) from exc

    def _index(
        self, result: "ExperimentResult", directory: Path, stored: str, digest: str
    ) -> IngestOutcome:
        from llem_persistence.store._rows import experiment_row, request_rows, warning_rows

        row = experiment_row(result)
        requests = request_rows(result)
        warnings = warning_rows(result)
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
            row |= {
                "study_id": study_id,
                "result_path": stored,
                "result_sha256": digest,
            }
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

    def _filters(
        self,
        statuses: Sequence[ExperimentStatus] | None,
        model: str | None,
        backend: str | None,
        since: datetime | None,
        until: datetime | None,
        min_output_tokens_per_j: float | None,
        study: str | None,
        warning: str | None,
    ) -> tuple[str, list[object]]:
        clauses: list[str] = []
        parameters: list[object] = []
        if statuses is not None:
            unknown = sorted(set(statuses) - set(EXPERIMENT_STATUSES))
            if unknown:
                raise StoreLookupError(
                    f"unknown status {unknown[0]!r}: choose from {', '.join(EXPERIMENT_STATUSES)}"
                )
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            parameters += statuses
        for column, text in (("model", model), ("backend", backend)):
            if text:
                clauses.append(f"{column} LIKE ? ESCAPE '\\'")
                parameters.append(f"%{escape_like(text)}%")
        if since is not None:
            clauses.append("created_at >= ?")
            parameters.append(_bound(since, earliest=True))
        if until is not None:
            clauses.append("created_at < ?")
            parameters.append(_bound(until, earliest=False))
        if min_output_tokens_per_j is not None:
            clauses.append("output_tokens_per_j >= ?")
            parameters.append(min_output_tokens_per_j)
        if study is not None:
            clauses.append(
                "study_id IN (SELECT study_id FROM studies WHERE study_id = ? OR name = ?)"
            )
            parameters += [study, study]
        if warning is not None:
            clauses.append("experiment_id IN (SELECT experiment_id FROM warnings WHERE code = ?)")
            parameters.append(warning)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), parameters

    def _summary(self, row: tuple[Any, ...]) -> ExperimentSummary:
        values = dict(zip(SUMMARY_FIELDS, row, strict=True))
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        if values["end_time"] is not None:
            values["end_time"] = datetime.fromisoformat(values["end_time"])
        if values["result_path"] is not None:
            values["result_path"] = self._absolute(values["result_path"])
        return ExperimentSummary(**values)

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

    def _stored_path(self, directory: Path) -> str:
        """Relative to the store's directory when inside it, so a moved results tree still
        resolves; absolute otherwise."""
        resolved = directory.resolve()
        base = self._base.resolve()
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
        return str(resolved)

    def _absolute(self, stored: str) -> Path:
        path = Path(stored)
        if path.is_absolute():
            return path
        if ".." in path.parts:
            raise UnsafePathError(
                f"{self.path}: indexed path {stored!r} leaves the store's directory"
            )
        return self._base / path

    def _holds(self, stored: str, digest: str | None) -> bool:
        """Whether the indexed directory ``stored`` still holds the indexed result."""
        try:
            data = (self._absolute(stored) / RESULT_FILE).read_bytes()
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() == digest

    def _size(self) -> int:
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _first_duplicate(requests: Sequence[tuple[object, ...]]) -> tuple[object, object] | None:
    """The first (process, request index) pair that occurs twice in ``requests``."""
    seen: set[tuple[object, object]] = set()
    for row in requests:
        key = (row[1], row[2])
        if key in seen:
            return key
        seen.add(key)
    return None


def _bound(when: datetime, *, earliest: bool) -> str:
    """``when`` as stored text; a time at the edge of the calendar (year 1 or 9999 in another
    time zone) that UTC cannot hold becomes the earliest or latest time there is."""
    try:
        return utc_text(aware(when))
    except (OverflowError, ValueError):
        edge = datetime.min if earliest else datetime.max
        return utc_text(edge.replace(tzinfo=UTC))

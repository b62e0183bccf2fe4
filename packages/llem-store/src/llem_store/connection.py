""":class:`StoreConnection`: opening a store file, its migrations, transactions and errors.

One file, WAL journal, a busy timeout and ``BEGIN IMMEDIATE`` transactions, so several
processes can write at once without "database is locked" failures. A store whose file or
directory cannot be written (a colleague's directory, a read-only mount) opens read-only:
every query works, every change is a :class:`ReadOnlyStoreError`.
"""

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path

from llem_store._sqlite import RESULT_FILE, SQLITE_HEADER, is_busy, store_error
from llem_store.errors import (
    NoStoreError,
    NotAStoreError,
    ReadOnlyStoreError,
    StoreError,
    StoreLookupError,
    StorePathError,
)
from llem_store.migrations import APPLICATION_ID, MIGRATIONS, Migration, migrate

__all__ = ["StoreConnection", "check_store_file"]

logger = logging.getLogger(__name__)


class StoreConnection:
    """An open store file: what every part of :class:`~llem_store.ResultStore` stands on.

    ``create=False`` opens an existing store only (a missing file is a
    :class:`NoStoreError`). ``read_only=None`` opens read-only exactly when the file or its
    directory cannot be written. An older store is migrated on opening, after a copy of it is
    kept beside it (``llem.db.v1.bak``); a foreign database or a store written by a newer llem
    is refused.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        create: bool = True,
        read_only: bool | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._base = self.path.absolute().parent
        if not self.path.exists():
            if not create or read_only:
                raise NoStoreError(f"no results store at {self.path}", path=self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if isinstance(exc, FileExistsError | NotADirectoryError):
                    reason = "a file is in the way of its directory"
                raise StorePathError(
                    f"cannot create {self.path}: {reason}", path=self.path
                ) from None
        elif self.path.is_dir():
            raise StoreLookupError(f"{self.path} is a directory, not a results store")
        else:
            self._check_header()
        self.read_only = _unwritable(self.path) if read_only is None else read_only
        self._file_version: int | None = None  # set when read through a migrated copy
        self._connection = self._connect()
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

    def __enter__(self) -> "StoreConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def results_dir(self) -> Path:
        """The directory the store lives in, which its relative result paths are below."""
        return self._base

    @property
    def schema_version(self) -> int:
        """The store file's schema version (``PRAGMA user_version``), also when it is read
        through a copy migrated in memory (:attr:`migrated_in_memory`)."""
        if self._file_version is not None:
            return self._file_version
        with self._errors():
            return self._user_version()

    @property
    def migrated_in_memory(self) -> bool:
        """Whether this read-only store, written by an older llem, is read through a copy
        migrated in memory (its file is left as it is)."""
        return self._file_version is not None

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
        """Apply pending ``migrations`` (opening applies llem's own too); returns those applied.

        A store already at a version is kept as ``llem.db.v<version>.bak`` before it changes.
        """
        self._require_writable()
        with self._errors():
            return self._upgrade(migrations)

    # -- opening ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                return self._connect_read_only()
            return sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, self.timeout_s) from exc

    def _connect_read_only(self) -> sqlite3.Connection:
        """A ``mode=ro`` connection. Where SQLite cannot create the shared-memory file a WAL
        store needs beside it (a directory this user may not write), and no write-ahead log
        holds changes, the file alone is the store: it is opened ``immutable``."""
        uri = self.path.absolute().as_uri()

        def connect(query: str) -> sqlite3.Connection:
            return sqlite3.connect(
                f"{uri}?{query}",
                uri=True,
                timeout=self.timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )

        connection = connect("mode=ro")
        try:
            connection.execute("PRAGMA user_version").fetchone()
        except sqlite3.OperationalError as exc:
            connection.close()
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_CANTOPEN:
                raise
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                # changes wait in the log, which SQLite cannot read without its shared memory
                raise ReadOnlyStoreError(
                    f"{self.path} cannot be read here: changes in its write-ahead log "
                    f"({wal.name}) need a file SQLite cannot create in this read-only "
                    "directory; open it once where it can be written, or copy the whole "
                    "results directory",
                    path=self.path,
                ) from None
            connection = connect("mode=ro&immutable=1")  # the file alone is the whole store
        return connection

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
            if not create or self.read_only:
                raise NoStoreError(
                    f"{self.path} is an empty file, not a results store yet", path=self.path
                )
        elif application_id != APPLICATION_ID:
            raise NotAStoreError(
                f"{self.path} is a database of another application (application_id "
                f"{application_id:#x}), not an llem results store",
                path=self.path,
            )
        if self.read_only:
            self._check_readable_version()
            return
        version, latest = self._user_version(), MIGRATIONS[-1].version
        if version > latest:  # refused before anything is written to it (its journal mode)
            raise StoreError(_newer(self.path, version, latest))
        self._enable_wal()
        connection.execute("PRAGMA synchronous = NORMAL")
        self._upgrade()

    def _check_readable_version(self) -> None:
        """A read-only store written by an older llem is read through a copy in memory,
        migrated there without reading its results again (what that needs stays empty)."""
        version, latest = self._user_version(), MIGRATIONS[-1].version
        if version > latest:
            raise StoreError(_newer(self.path, version, latest))
        if version == latest:
            return
        copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            self._connection.backup(copy)
        except BaseException:
            copy.close()
            raise
        self._connection.close()
        self._connection = copy
        self._file_version = version
        copy.execute("PRAGMA foreign_keys = ON")
        copy.execute("BEGIN IMMEDIATE")
        migrate(copy, version, results_dir=None)
        copy.execute("COMMIT")
        logger.warning(
            "%s is read-only and at store schema %d: read through a copy migrated in memory "
            "(energy by scope is missing until it is opened where it can be written)",
            self.path,
            version,
        )

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
            raise StoreError(_newer(self.path, version, latest))
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
            return migrate(self._connection, version, migrations, results_dir=self._base)

    def _user_version(self) -> int:
        return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    # -- transactions and errors -----------------------------------------------------------

    def _require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(
                f"{self.path} is read-only here: it can be read, not changed", path=self.path
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: take the write lock up front, so two writers queue on the busy
        timeout instead of one failing when it upgrades a read lock."""
        self._require_writable()
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

    # -- paths -----------------------------------------------------------------------------

    def _stored_path(self, directory: Path) -> str:
        """Relative to the store's directory when inside it, so a moved results tree still
        resolves; absolute otherwise."""
        resolved = directory.resolve()
        base = self._base.resolve()
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
        return str(resolved)

    def _absolute(self, stored: str) -> Path:
        """Where an indexed path leads (relative ones from the store's directory). Whether
        it stays inside is for whoever would remove it to check (``_check_inside``)."""
        return self._base / stored

    def _result_digest(self, stored: str) -> str | None:
        """The SHA-256 of the ``result.json`` in the indexed directory ``stored``; ``None``
        when it cannot be read."""
        try:
            data = (self._absolute(stored) / RESULT_FILE).read_bytes()
        except OSError:
            return None
        return hashlib.sha256(data).hexdigest()

    def _size(self) -> int:
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _unwritable(path: Path) -> bool:
    """Whether the store cannot be changed here: SQLite writes the file and, beside it, its
    journal (a read-only mount answers ``EROFS`` to both)."""
    directory = path.absolute().parent
    if not path.exists():
        return not os.access(directory, os.W_OK)
    return not (os.access(path, os.W_OK) and os.access(directory, os.W_OK))


def _newer(path: Path, version: int, latest: int) -> str:
    return (
        f"{path} was written by a newer llem (store schema {version}, this llem knows up to "
        f"{latest}): upgrade llem to read it"
    )


def check_store_file(path: Path) -> None:
    """Raise what opening ``path`` as a store would for a file that is none (a directory, not
    SQLite, another application's database), reading it only: nothing is migrated, nothing
    written. A missing or empty file passes (a store is made there at the first write)."""
    if not path.exists():
        return
    if path.is_dir():
        raise StoreLookupError(f"{path} is a directory, not a results store")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not header:
        return
    if header != SQLITE_HEADER:
        raise NotAStoreError(f"{path} is not an llem results store (not an SQLite file)", path=path)
    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    finally:
        connection.close()
    if application_id == 0 and tables:
        raise NotAStoreError(
            f"{path} is an SQLite database of another application, not an llem results store",
            path=path,
        )
    if application_id not in (0, APPLICATION_ID):
        raise NotAStoreError(
            f"{path} is a database of another application (application_id "
            f"{application_id:#x}), not an llem results store",
            path=path,
        )

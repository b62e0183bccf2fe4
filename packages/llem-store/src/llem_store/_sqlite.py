"""SQLite plumbing of the store: its errors in words a user can act on, backup files,
``LIKE`` patterns, and the walk that finds result directories."""

import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Final

from llem_store.errors import (
    CorruptStoreError,
    ForeignDatabaseError,
    ReadOnlyStoreError,
    StoreError,
)
from llem_store.migrations import APPLICATION_ID, STORE_SCHEMA_VERSION

__all__ = [
    "MANIFEST_FILE",
    "RESULT_FILE",
    "SQLITE_HEADER",
    "aware",
    "escape_like",
    "is_busy",
    "like_prefix",
    "open_backup",
    "result_dirs",
    "store_error",
]

SQLITE_HEADER: Final = b"SQLite format 3\x00"
RESULT_FILE: Final = "result.json"  # llem_schema.RESULT_FILE, without importing pydantic here
MANIFEST_FILE: Final = "manifest.json"  # llem_schema.MANIFEST_FILE: a study directory


def result_dirs(root: Path, *, manifests: list[Path] | None = None) -> Iterator[Path]:
    """Directories below ``root`` holding ``result.json``; hidden ones are not entered.
    Directories holding a study manifest on the way are appended to ``manifests``."""
    for current, subdirectories, files in os.walk(root):
        if RESULT_FILE in files:
            subdirectories.clear()  # results do not nest
            yield Path(current)
            continue
        if manifests is not None and MANIFEST_FILE in files:
            manifests.append(Path(current))
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]


def is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def store_error(path: Path, exc: sqlite3.Error, timeout_s: float) -> StoreError:
    text = str(exc)
    if is_busy(exc):
        return StoreError(
            f"{path} is busy: another process held it for more than {timeout_s:g} s; try again"
        )
    if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
        return CorruptStoreError(f"{path} is corrupt ({text})", path=path)
    if "readonly" in text:
        return ReadOnlyStoreError(f"cannot write {path}: {text}", path=path)
    if "unable to open" in text:
        return StoreError(f"cannot open {path}: {text}")
    return StoreError(f"{path}: {text}")


def open_backup(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A read-only connection to an llem store that passes SQLite's integrity check."""
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise ForeignDatabaseError(f"{path} is not an llem results store (not an SQLite file)")
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise store_error(path, exc, timeout_s) from exc
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        if application_id != APPLICATION_ID:
            raise ForeignDatabaseError(
                f"{path} is not an llem results store (application_id {application_id:#x})"
            )
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > STORE_SCHEMA_VERSION:
            raise StoreError(
                f"{path} was written by a newer llem (store schema {version}); upgrade llem"
            )
        problems = [m for (m,) in connection.execute("PRAGMA integrity_check") if m != "ok"]
        if problems:
            raise StoreError(f"{path} is damaged, not restored: {problems[0]}")
    except sqlite3.Error as exc:
        connection.close()
        raise store_error(path, exc, timeout_s) from exc
    except BaseException:
        connection.close()
        raise
    return connection


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_prefix(text: str) -> str:
    return f"{escape_like(text)}%"


def aware(when: datetime) -> datetime:
    """Naive datetimes are taken as local time, as a user typing ``--since 2026-11-01`` means."""
    return when if when.tzinfo is not None else when.astimezone()

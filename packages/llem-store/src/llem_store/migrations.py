"""The store's SQL schema and its migrations.

The version lives in SQLite's ``user_version`` header field and, with a description and a
date, in the ``store_schema`` table. ``application_id`` marks the file as llem's, so a
foreign database is refused instead of being written into. Each migration runs inside the
caller's transaction: a database is at one version or the next, never in between.
"""

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

__all__ = ["APPLICATION_ID", "MIGRATIONS", "STORE_SCHEMA_VERSION", "Migration", "migrate"]

logger = logging.getLogger(__name__)

APPLICATION_ID: Final = 0x6C6C656D
"""``PRAGMA application_id`` of an llem store: the bytes of ``llem``."""


@dataclass(frozen=True)
class Migration:
    """The SQL that takes a store from ``version - 1`` to ``version``."""

    version: int
    description: str
    script: str
    backfill: Callable[[sqlite3.Connection, Path | None], None] | None = None
    """Run after the script, in the same transaction: fills what SQL alone cannot. It is
    given the results directory whose result files it may read again, or ``None`` when
    none may be read (a read-only store migrated in memory to be read)."""


_V1: Final = """
CREATE TABLE store_schema (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

CREATE TABLE studies (
    study_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    design_hash TEXT,
    created_at TEXT NOT NULL,
    study_path TEXT
);

CREATE TABLE experiments (
    experiment_id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'incomplete')),
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    backend_version TEXT,
    precision TEXT,
    batch_size INTEGER,
    num_processes INTEGER,
    created_at TEXT NOT NULL,
    end_time TEXT,
    duration_s REAL,
    config_hash TEXT NOT NULL,
    config_json TEXT NOT NULL,
    schema_version TEXT,
    requests INTEGER,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_energy_j REAL,
    energy_adjusted_j REAL,
    baseline_power_w REAL,
    output_tokens_per_s REAL,
    output_tokens_per_j REAL,
    energy_per_output_token_j REAL,
    output_tokens_per_j_adjusted REAL,
    ttft_median_ms REAL,
    ttft_p95_ms REAL,
    itl_median_ms REAL,
    itl_p95_ms REAL,
    tpot_median_ms REAL,
    e2e_median_ms REAL,
    e2e_p95_ms REAL,
    peak_memory_mb REAL,
    warning_count INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    study_id TEXT REFERENCES studies (study_id) ON DELETE SET NULL,
    result_path TEXT UNIQUE,
    result_sha256 TEXT,
    indexed_at TEXT NOT NULL
);
CREATE INDEX experiments_by_created ON experiments (created_at);
CREATE INDEX experiments_by_status ON experiments (status, created_at);
CREATE INDEX experiments_by_model ON experiments (model, created_at);
CREATE INDEX experiments_by_backend ON experiments (backend, created_at);
CREATE INDEX experiments_by_efficiency ON experiments (output_tokens_per_j);
CREATE INDEX experiments_by_config ON experiments (config_hash);
CREATE INDEX experiments_by_study ON experiments (study_id);

CREATE TABLE requests (
    experiment_id TEXT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    process_index INTEGER NOT NULL,
    request_index INTEGER NOT NULL,
    batch_index INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    ttft_ms REAL,
    e2e_ms REAL,
    tpot_ms REAL,  -- (e2e - ttft) / (output_tokens - 1): the request's mean inter-token gap
    itl_max_ms REAL,
    PRIMARY KEY (experiment_id, process_index, request_index)
) WITHOUT ROWID;

CREATE TABLE warnings (
    experiment_id TEXT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('measurement', 'aggregation')),
    message TEXT NOT NULL,
    PRIMARY KEY (experiment_id, position)
) WITHOUT ROWID;
"""

_V2: Final = """
ALTER TABLE warnings ADD COLUMN code TEXT NOT NULL DEFAULT 'unclassified';
CREATE INDEX warnings_by_code ON warnings (code, experiment_id);
"""


def _warning_codes(connection: sqlite3.Connection, _: Path | None) -> None:
    """The code of every warning indexed before codes existed, from its wording (as a
    result of schema 1.2 gets it when it is loaded)."""
    from llem_schema.warning_codes import classify_legacy

    rows = connection.execute("SELECT experiment_id, position, message FROM warnings").fetchall()
    connection.executemany(
        "UPDATE warnings SET code = ? WHERE experiment_id = ? AND position = ?",
        [(classify_legacy(message), eid, position) for eid, position, message in rows],
    )


_V3: Final = """
ALTER TABLE experiments ADD COLUMN energy_j REAL;
ALTER TABLE experiments ADD COLUMN energy_scope TEXT;
ALTER TABLE experiments ADD COLUMN gpu_energy_j REAL;
ALTER TABLE experiments ADD COLUMN cpu_energy_j REAL;
"""


def _reread_results(connection: sqlite3.Connection, results_dir: Path | None) -> None:
    """Energy by scope, and each warning once, for results indexed before: read again from
    their ``result.json`` (schema 1.2 results migrate as they load). A result whose file is
    gone, no longer parses, or changed since it was indexed keeps the row it had, with no
    scope (``llem db check`` names it; ``llem results import`` indexes a changed one anew)."""
    rows = connection.execute(
        "SELECT experiment_id, result_path, result_sha256 FROM experiments "
        "WHERE result_path IS NOT NULL"
    ).fetchall()
    if not rows or results_dir is None:
        return  # nothing to read, or nothing that may be read (pydantic stays unloaded)
    from llem_schema import ExperimentResult, LlemError
    from llem_store.rows import experiment_row, warnings_table_rows

    for experiment_id, stored, digest in rows:
        file = results_dir / stored / "result.json"  # an absolute ``stored`` stays itself
        try:
            if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
                continue  # not the file indexed: its figures would mix with the row's
            result = ExperimentResult.from_json(file)
        except (OSError, ValueError, LlemError) as exc:
            logger.warning("%s: not read again (%s)", file, exc)
            continue
        if result.experiment_id != experiment_id:
            continue
        row = experiment_row(result)
        connection.execute(
            "UPDATE experiments SET energy_j = ?, energy_scope = ?, gpu_energy_j = ?, "
            "cpu_energy_j = ?, warning_count = ? WHERE experiment_id = ?",
            (
                row["energy_j"],
                row["energy_scope"],
                row["gpu_energy_j"],
                row["cpu_energy_j"],
                row["warning_count"],
                experiment_id,
            ),
        )
        connection.execute("DELETE FROM warnings WHERE experiment_id = ?", (experiment_id,))
        connection.executemany(
            "INSERT INTO warnings (experiment_id, position, source, message, code) "
            "VALUES (?, ?, ?, ?, ?)",
            warnings_table_rows(result),
        )


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "experiments, requests, warnings, studies", _V1),
    Migration(2, "a code per warning", _V2, _warning_codes),
    Migration(3, "energy by scope; each warning once", _V3, _reread_results),
)
STORE_SCHEMA_VERSION: Final = MIGRATIONS[-1].version


def migrate(
    connection: sqlite3.Connection,
    current: int,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    results_dir: Path | None = None,
) -> list[Migration]:
    """Apply every migration above ``current``, in order; the caller holds a write transaction.
    ``results_dir`` is where the store's relative result paths lead, for backfills that read
    results again (``None``: they read none).

    Returns the migrations applied. ``executescript`` would commit, so each statement runs on
    its own and the whole upgrade commits or rolls back with the caller's transaction.
    """
    applied = []
    for migration in migrations:
        if migration.version <= current:
            continue
        for statement in _statements(migration.script):
            connection.execute(statement)
        if migration.backfill is not None:
            migration.backfill(connection, results_dir)
        connection.execute(
            "INSERT INTO store_schema (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, datetime.now(UTC).isoformat()),
        )
        connection.execute(f"PRAGMA user_version = {int(migration.version)}")
        applied.append(migration)
    if applied or current == 0:
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return applied


def _statements(script: str) -> list[str]:
    """Split a script into complete SQL statements (``sqlite3.complete_statement`` decides)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:60]!r}")
    return statements

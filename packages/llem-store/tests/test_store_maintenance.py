"""The store's file: versions and migrations, foreign and corrupt files, integrity checks,
backup and restore, vacuum. Every error is checked by the message a user sees."""

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from llem_schema import ExperimentResult, MeasurementWarning
from llem_store import (
    STORE_SCHEMA_VERSION,
    ExperimentFilter,
    ForeignDatabaseError,
    ReadOnlyStoreError,
    ResultStore,
    StoreError,
    StoreLookupError,
)
from llem_store.errors import CorruptStoreError, NoStoreError
from llem_store.migrations import APPLICATION_ID, MIGRATIONS, Migration, migrate
from llem_store.rows import experiment_row

MakeResult = Callable[..., Path]  # the conftest fixture: (experiment_id, *, model, hours, root)


@pytest.fixture
def store_with_two(tmp_path: Path, make_result: MakeResult) -> Path:
    make_result("exp-a")
    make_result("exp-b", hours=1)
    db = tmp_path / "results" / "llem.db"
    with ResultStore(db) as store:
        store.import_tree(tmp_path / "results")
    return db


def test_a_new_store_is_marked_as_llem_s_and_versioned(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "llem.db"
    with ResultStore(db) as store:
        assert store.schema_version == STORE_SCHEMA_VERSION
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        versions = connection.execute("SELECT version, description FROM store_schema").fetchall()
    assert versions == [
        (1, "experiments, requests, warnings, studies"),
        (2, "a code per warning"),
        (3, "energy by scope; each warning once"),
    ]
    assert STORE_SCHEMA_VERSION == 3


def test_opening_without_create_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(NoStoreError) as caught:
        ResultStore(tmp_path / "llem.db", create=False)
    assert str(caught.value) == f"no results store at {tmp_path / 'llem.db'}"
    assert caught.value.path == tmp_path / "llem.db"
    assert isinstance(caught.value, StoreLookupError)
    assert not (tmp_path / "llem.db").exists()  # nothing created by looking


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(ForeignDatabaseError) as caught:
        ResultStore(notes)
    assert str(caught.value) == f"{notes} is not an llem results store (not an SQLite file)"
    assert notes.read_text() == "my notes\n"


def test_another_application_s_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(ForeignDatabaseError) as caught:
        ResultStore(other)
    assert str(caught.value) == (
        f"{other} is an SQLite database of another application, not an llem results store"
    )
    marked = tmp_path / "marked.db"
    with sqlite3.connect(marked) as connection:
        connection.execute("PRAGMA application_id = 42")
    with pytest.raises(ForeignDatabaseError) as caught:
        ResultStore(marked)
    assert "(application_id 0x2a), not an llem results store" in str(caught.value)
    with sqlite3.connect(other) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]


def test_a_store_from_a_newer_llem_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    ResultStore(db).close()
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError) as caught:
        ResultStore(db)
    assert str(caught.value) == (
        f"{db} was written by a newer llem (store schema 99, this llem knows up to "
        f"{STORE_SCHEMA_VERSION}): upgrade llem to read it"
    )


def test_a_corrupt_store_says_how_to_recover(store_with_two: Path) -> None:
    data = bytearray(store_with_two.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size:] = b"\xa5" * (len(data) - page_size)  # every page after the first
    store_with_two.write_bytes(bytes(data))
    with pytest.raises(StoreError) as caught, ResultStore(store_with_two) as store:
        store.list_experiments()
    assert str(caught.value) == f"{store_with_two} is corrupt (database disk image is malformed)"
    assert isinstance(caught.value, CorruptStoreError)
    assert caught.value.path == store_with_two  # the command line says how to restore it


def test_a_store_with_a_damaged_header_says_how_to_recover(store_with_two: Path) -> None:
    data = bytearray(store_with_two.read_bytes())
    data[16:24] = b"\xff" * 8  # page size and format bytes
    store_with_two.write_bytes(bytes(data))
    with pytest.raises(StoreError) as caught:
        ResultStore(store_with_two)
    assert str(caught.value).startswith(f"{store_with_two} is corrupt (file is not a database)")


def test_migrations_apply_in_order_and_keep_a_copy_of_the_old_store(tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    now = STORE_SCHEMA_VERSION  # a new store is at llem's own latest version
    later = (
        *MIGRATIONS,
        Migration(now + 1, "energy per request", "ALTER TABLE requests ADD COLUMN energy_j REAL;"),
        Migration(
            now + 2, "an index", "CREATE INDEX requests_by_tokens ON requests (output_tokens);"
        ),
    )
    with ResultStore(db) as store:
        applied = store.migrate(later)
        assert [m.version for m in applied] == [now + 1, now + 2]
        assert store.schema_version == now + 2
        assert store.migrate(later) == []
    with sqlite3.connect(db) as connection:
        versions = [v for (v,) in connection.execute("SELECT version FROM store_schema")]
        assert versions == list(range(1, now + 3))
        columns = [row[1] for row in connection.execute("PRAGMA table_info(requests)")]
        assert "energy_j" in columns
    with sqlite3.connect(tmp_path / f"llem.db.v{now}.bak") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (now,)


def test_a_failing_migration_leaves_the_store_at_its_version(tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    now = STORE_SCHEMA_VERSION
    broken = (
        *MIGRATIONS,
        Migration(now + 1, "adds a column", "ALTER TABLE requests ADD COLUMN energy_j REAL;"),
        Migration(now + 2, "broken", "ALTER TABLE no_such_table ADD COLUMN x;"),
    )
    with ResultStore(db) as store:
        with pytest.raises(StoreError) as caught:
            store.migrate(broken)
        assert str(caught.value) == f"{db}: no such table: no_such_table"
        assert store.schema_version == now
    with sqlite3.connect(db) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(requests)")]
    assert "energy_j" not in columns  # the first new migration rolled back with the second


# Warnings as llem wrote them before codes existed (store schema 1, result schema 1.2).
LEGACY_WARNINGS = [
    (
        "measurement",
        "measurement window was 12.0 s, shorter than 60 s: start/stop effects weigh on the "
        "energy figures; measure more prompts or more tokens so the window lasts at least a "
        "minute",
        "short_window",
    ),
    (
        "measurement",
        "process 1: ECC is off on GPU GPU-B: memory power and bandwidth differ from ECC-on "
        "GPUs, so compare only with ECC-off runs, or enable it (`sudo nvidia-smi -e 1`, then "
        "reboot)",
        "ecc_off",
    ),
    (
        "aggregation",
        "processes did not run together for at least half of the shortest one: the window "
        "and throughput span idle gaps; check for stragglers or a slow launch",
        "window_overlap",
    ),
    ("measurement", "a note of the backend's that no wording names", "unclassified"),
]


SCOPE_COLUMNS = ("energy_j", "energy_scope", "gpu_energy_j", "cpu_energy_j")  # store schema 3


def _version_1_store(
    db: Path, template: ExperimentResult, warnings: dict[str, list[tuple[str, str]]]
) -> None:
    """A store at schema 1 (llem's first migration only) holding one experiment per key of
    ``warnings``, a copy of ``template`` with those (source, message) warnings, as the llem
    of that schema indexed it."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as connection:
        connection.execute("BEGIN")
        assert [m.version for m in migrate(connection, 0, MIGRATIONS[:1])] == [1]
        for hours, (experiment_id, rows) in enumerate(warnings.items()):
            result = template.model_copy(
                update={
                    "experiment_id": experiment_id,
                    "start_time": template.start_time + timedelta(hours=hours),
                }
            )
            row = {k: v for k, v in experiment_row(result).items() if k not in SCOPE_COLUMNS}
            row |= {"warning_count": len(rows), "indexed_at": "2026-11-22T15:00:00+00:00"}
            columns, marks = ", ".join(row), ", ".join("?" * len(row))
            connection.execute(
                f"INSERT INTO experiments ({columns}) VALUES ({marks})", list(row.values())
            )
            connection.executemany(
                "INSERT INTO warnings VALUES (?, ?, ?, ?)",
                [(experiment_id, i, source, text) for i, (source, text) in enumerate(rows)],
            )
        connection.execute("COMMIT")


def test_a_version_1_store_gets_warning_codes_from_the_wording(
    tmp_path: Path, template_result: ExperimentResult
) -> None:
    db = tmp_path / "llem.db"
    _version_1_store(
        db,
        template_result,
        {
            "exp-legacy": [(source, message) for source, message, _ in LEGACY_WARNINGS],
            "exp-quiet": [],
            "exp-unknown": [("measurement", "something only a person could read")],
        },
    )
    with sqlite3.connect(db) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(warnings)")]
    assert "code" not in columns  # truly the old schema
    with ResultStore(db) as store:  # opening migrates it
        assert store.schema_version == STORE_SCHEMA_VERSION
        assert store.warnings("exp-legacy") == [
            (source, code, message) for source, message, code in LEGACY_WARNINGS
        ]
        assert store.warnings("exp-unknown") == [
            ("measurement", "unclassified", "something only a person could read")
        ]
        short = [
            s.experiment_id
            for s in store.list_experiments(ExperimentFilter(warning="short_window"))
        ]
        overlap = store.count_experiments(ExperimentFilter(warning="window_overlap"))
        unclassified = [
            s.experiment_id
            for s in store.list_experiments(ExperimentFilter(warning="unclassified"))
        ]
        assert store.count_experiments() == 3
    assert short == ["exp-legacy"]
    assert overlap == 1
    assert unclassified == ["exp-unknown", "exp-legacy"]  # newest first
    with sqlite3.connect(db) as connection:
        assert connection.execute(
            "SELECT version, description FROM store_schema ORDER BY version"
        ).fetchall()[-1] == (3, "energy by scope; each warning once")
    # the copy kept before migrating is the old store, untouched
    with sqlite3.connect(tmp_path / "llem.db.v1.bak") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (1,)
        columns = [row[1] for row in connection.execute("PRAGMA table_info(warnings)")]
        assert connection.execute("SELECT count(*) FROM warnings").fetchone() == (5,)
    assert "code" not in columns


def test_a_result_indexed_after_the_migration_keeps_its_own_codes(
    tmp_path: Path, template_result: ExperimentResult, make_result: MakeResult
) -> None:
    db = tmp_path / "results" / "llem.db"
    db.parent.mkdir()
    _version_1_store(db, template_result, {"exp-legacy": [("measurement", "fewer prompts")]})
    # worded like a short window, coded otherwise: the code it carries is the one indexed
    odd = MeasurementWarning(code="backend", message="measurement window was 3 s per batch")
    directory = make_result("exp-new", hours=1, warnings=[odd])
    with ResultStore(db) as store:
        store.ingest(directory)
        assert store.warnings("exp-new") == [("measurement", "backend", odd.message)]
        assert store.count_experiments(ExperimentFilter(warning="short_window")) == 0
        assert store.count_experiments(ExperimentFilter(warning="backend")) == 1


def test_check_finds_missing_and_changed_results_and_lost_rows(
    store_with_two: Path, tmp_path: Path
) -> None:
    with ResultStore(store_with_two) as store:
        report = store.check()
        assert report.ok
        assert report.experiments_checked == 2
        a = store.get("exp-a").result_path
        b = store.get("exp-b").result_path
        assert a is not None
        assert b is not None
        (a / "result.json").unlink()
        (b / "result.json").write_text((b / "result.json").read_text() + "\n")
        with sqlite3.connect(store_with_two) as connection:
            connection.execute("DELETE FROM requests WHERE experiment_id = 'exp-b'")
        report = store.check()
    assert not report.ok
    assert report.problems == [
        "exp-b: 0 request rows, its result has 12",
        f"exp-a: {a / 'result.json'} is missing (moved or deleted)",
        f"exp-b: {b / 'result.json'} changed since it was indexed",
    ]


def test_backup_while_in_use_and_restore(store_with_two: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backups" / "llem-backup.db"
    backup.parent.mkdir()
    with ResultStore(store_with_two) as store:
        assert store.backup(backup) == backup
        with pytest.raises(StoreLookupError) as caught:
            store.backup(backup)
        assert str(caught.value) == f"{backup} exists; choose another file or overwrite it"
        before = store.list_experiments()
        with sqlite3.connect(store_with_two) as connection:
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("DELETE FROM experiments WHERE experiment_id = 'exp-a'")
        assert len(store.list_experiments()) == 1
        kept = store.restore(backup)
        assert store.list_experiments() == before
        assert store.check().ok
    assert kept.name.startswith("llem.db.before-restore-")
    with ResultStore(kept, create=False) as previous:
        assert [s.experiment_id for s in previous.list_experiments()] == ["exp-b"]
    # the backup is a plain rollback-journal file: restoring from it leaves nothing beside it
    assert sorted(p.name for p in backup.parent.iterdir()) == ["llem-backup.db"]
    with sqlite3.connect(backup) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_backup_into_a_missing_directory_names_it(store_with_two: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "backup.db"
    with ResultStore(store_with_two) as store, pytest.raises(StoreLookupError) as caught:
        store.backup(target)
    assert str(caught.value) == f"cannot write {target}: {target.parent} is missing"


def test_restores_in_quick_succession_each_keep_the_previous_contents(
    store_with_two: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    with ResultStore(store_with_two) as store:
        store.backup(backup)
        kept = [store.restore(backup) for _ in range(5)]
        assert len(store.list_experiments()) == 2
        with pytest.raises(StoreLookupError) as itself:
            store.restore(store_with_two)
    assert str(itself.value) == f"{store_with_two} is the store itself: there is nothing to restore"
    assert len(set(kept)) == 5
    # the newest three copies stay; older ones do not pile up
    assert sorted(store_with_two.parent.glob("llem.db.before-restore-*")) == kept[-3:]
    # only llem's own copies are counted, never the one just made nor the backup restored
    mine = store_with_two.with_name("llem.db.before-restore-mine")
    future = store_with_two.with_name("llem.db.before-restore-20990101T000000.000000")
    mine.write_bytes(b"a user's file")
    shutil.copy(kept[-1], future)  # a clock far ahead wrote this one
    with ResultStore(store_with_two) as store:
        newest = store.restore(kept[-2])
    assert newest.is_file()
    assert kept[-2].is_file()  # restored from: kept
    assert mine.read_bytes() == b"a user's file"
    # the new copy, the two newest others (by their time), and the backup restored from
    assert sorted(store_with_two.parent.glob("llem.db.before-restore-2*")) == sorted(
        {newest, kept[-1], future, kept[-2]}
    )


def test_restore_refuses_what_is_not_an_llem_backup(store_with_two: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("hello")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    with ResultStore(store_with_two) as store:
        before = store.list_experiments()
        with pytest.raises(ForeignDatabaseError) as caught:
            store.restore(notes)
        assert str(caught.value) == f"{notes} is not an llem results store (not an SQLite file)"
        with pytest.raises(ForeignDatabaseError) as caught:
            store.restore(other)
        assert str(caught.value) == f"{other} is not an llem results store (application_id 0x0)"
        with pytest.raises(StoreLookupError) as missing:
            store.restore(tmp_path / "missing.db")
        assert str(missing.value) == f"no backup at {tmp_path / 'missing.db'}"
        assert store.list_experiments() == before
    assert not list(store_with_two.parent.glob("llem.db.before-restore-*"))


def test_vacuum_reclaims_space(tmp_path: Path, make_result: MakeResult) -> None:
    for index in range(30):
        make_result(f"exp-{index}", hours=index)
    db = tmp_path / "results" / "llem.db"
    with ResultStore(db) as store:
        store.import_tree(tmp_path / "results")
        with sqlite3.connect(db) as connection:
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("DELETE FROM experiments WHERE experiment_id != 'exp-0'")
        before, after = store.vacuum()
        assert after < before
        assert after == db.stat().st_size
        assert [s.experiment_id for s in store.list_experiments()] == ["exp-0"]


FIXTURES = Path(__file__).parent / "fixtures"


def test_a_store_of_schema_2_migrates_to_scopes_and_counts_each_warning_once(
    tmp_path: Path,
) -> None:
    # written by the llem of store schema 2 (llem_persistence.store), beside its result: a
    # 3-process run with one process missing, whose aggregation note that store counted twice
    results = tmp_path / "results"
    shutil.copytree(FIXTURES / "store-v2", results)
    with sqlite3.connect(results / "llem.db") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert connection.execute(
            "SELECT warning_count FROM experiments WHERE experiment_id = 'exp-two-processes'"
        ).fetchone() == (3,)
    result = ExperimentResult.from_json(next(results.glob("*/result.json")))
    with ResultStore(results / "llem.db") as store:
        summary = store.get("exp-two-processes")
        warnings = store.warnings("exp-two-processes")
    assert summary.warning_count == len(result.measurement_warnings) == 2
    assert warnings == [
        ("measurement", "few_prompts", result.measurement_warnings[0].message),
        ("aggregation", "incomplete", result.measurement_warnings[1].message),
    ]
    assert summary.energy_scope == result.energy_scope == "gpu"
    assert summary.energy_j == result.scope_energy_j()
    assert summary.gpu_energy_j == result.gpu_energy_j
    assert (results / "llem.db.v2.bak").is_file()


def test_a_read_only_store_of_schema_2_is_read_through_a_copy_migrated_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results = tmp_path / "results"
    shutil.copytree(FIXTURES / "store-v2", results)
    db = results / "llem.db"
    with ResultStore(db, read_only=True) as store:
        summary = store.get("exp-two-processes")
        assert (store.schema_version, store.migrated_in_memory) == (2, True)  # the file's
        with pytest.raises(ReadOnlyStoreError) as caught:
            store.mark_failed("exp-two-processes", "no")
        with pytest.raises(ReadOnlyStoreError) as migrating:
            store.migrate()
        with pytest.raises(ReadOnlyStoreError) as backing_up:  # not the copy, a half migration
            store.backup(tmp_path / "copy.db")
    assert str(caught.value) == f"{db} is read-only here: it can be read, not changed"
    assert str(migrating.value) == str(caught.value)
    assert str(backing_up.value) == (
        f"{db} is read-only and at store schema 2, read through a copy migrated in memory: "
        "copy the file itself instead"
    )
    assert summary.energy_scope is None  # its results are not read again to fill it
    assert summary.total_energy_j is not None
    assert "read through a copy migrated in memory" in caplog.text
    with sqlite3.connect(db) as connection:  # the file itself is as it was
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
    assert not (results / "llem.db.v2.bak").exists()


def test_the_migration_leaves_a_result_that_changed_since_it_was_indexed_as_indexed(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    shutil.copytree(FIXTURES / "store-v2", results)
    (file,) = results.glob("*/result.json")
    document = json.loads(file.read_text())
    document["total_energy_j"] = document["gpu_energy_j"] = 480.0  # a valid, other result
    file.write_text(json.dumps(document))
    with ResultStore(results / "llem.db") as store:
        summary = store.get("exp-two-processes")
    # not half of each: the row stays the indexed file's, without a scope, until re-imported
    assert (summary.total_energy_j, summary.energy_scope, summary.warning_count) == (240.0, None, 3)

"""``llem db init|backup|restore|migrate|check|vacuum`` on real store files."""

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from llem_schema import ExperimentResult
from llem_store import STORE_SCHEMA_VERSION, ExperimentFilter, ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]
MakeResult = Callable[..., ExperimentResult]


def indexed_ids(db: Path) -> list[str]:
    with ResultStore(db, create=False) as store:
        return sorted(
            s.experiment_id for s in store.list_experiments(ExperimentFilter(statuses=None))
        )


def test_init_creates_a_store_then_reports_it(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    created = llem("db", "init", "--db", str(db))
    assert (created.exit_code, created.stdout) == (
        0,
        f"{db}: initialised, store schema {STORE_SCHEMA_VERSION}\n",
    )
    again = llem("db", "init", "--db", str(db))
    assert (again.exit_code, again.stdout) == (
        0,
        f"{db}: already initialised, store schema {STORE_SCHEMA_VERSION}\n",
    )
    assert indexed_ids(db) == []


def test_init_refuses_a_foreign_file(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    db.write_text("a,b\n1,2\n")
    outcome = llem("db", "init", "--db", str(db))
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith(f"error: {db} is not an llem results store")
    assert db.read_text() == "a,b\n1,2\n"


def test_backup_then_restore_brings_the_old_contents_back(
    llem: Llem, results: Path, make_result: MakeResult, tmp_path: Path
) -> None:
    db = results / "llem.db"
    backup = tmp_path / "backup.db"
    outcome = llem("db", "backup", str(backup), "--db", str(db))
    assert (outcome.exit_code, outcome.stdout) == (0, f"backed up {db} to {backup}\n")
    with ResultStore(db) as store:
        store.ingest(make_result("exp_later").save(results))
    assert "exp_later" in indexed_ids(db)

    again = llem("db", "backup", str(backup), "--db", str(db))
    assert (again.exit_code, again.stderr) == (
        2,
        f"error: {backup} exists; choose another file or overwrite it\n",
    )

    restored = llem("db", "restore", str(backup), "--db", str(db))
    assert restored.exit_code == 0, restored.stderr
    match = re.fullmatch(
        rf"restored {re.escape(str(db))} from {re.escape(str(backup))}; its previous contents "
        r"are kept at (\S+)\n",
        restored.stdout,
    )
    assert match, restored.stdout
    assert indexed_ids(db) == ["exp_0", "exp_1", "exp_2", "exp_3"]
    assert "exp_later" in indexed_ids(Path(match[1]))


def test_restore_replaces_a_store_too_damaged_to_open(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    db = results / "llem.db"
    backup = tmp_path / "backup.db"
    assert llem("db", "backup", str(backup), "--db", str(db)).exit_code == 0
    data = bytearray(db.read_bytes())
    data[16:100] = bytes(84)
    db.write_bytes(bytes(data))
    assert llem("results", "list", "--db", str(db)).exit_code == 1

    restored = llem("db", "restore", str(backup), "--db", str(db))
    assert restored.exit_code == 0, restored.stderr
    assert re.fullmatch(
        rf"{re.escape(str(db))} could not be opened \(.*file is not a database.*\); moved it "
        rf"to {re.escape(str(db))}\.damaged-\d{{8}}T\d{{6}}\.\d{{6}}\n",
        restored.stderr,
    ), restored.stderr
    assert indexed_ids(db) == ["exp_0", "exp_1", "exp_2", "exp_3"]


def test_restore_leaves_a_store_of_a_newer_llem_where_it_is(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    import sqlite3

    db = results / "llem.db"
    backup = tmp_path / "backup.db"
    assert llem("db", "backup", str(backup), "--db", str(db)).exit_code == 0
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA user_version = 99")
    refused = llem("db", "restore", str(backup), "--db", str(db))
    assert (refused.exit_code, refused.stderr) == (
        1,
        f"error: {db} was written by a newer llem (store schema 99, this llem knows up to "
        f"{STORE_SCHEMA_VERSION}): upgrade llem to read it\n",
    )
    assert not list(results.glob("llem.db.damaged-*"))
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (99,)


def test_restore_of_a_missing_or_foreign_backup_is_exit_2(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    db = str(results / "llem.db")
    missing = llem("db", "restore", str(tmp_path / "nope.db"), "--db", db)
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"error: no backup at {tmp_path / 'nope.db'}\n",
    )
    foreign = tmp_path / "foreign.db"
    foreign.write_text("hello")
    refused = llem("db", "restore", str(foreign), "--db", db)
    assert (refused.exit_code, refused.stderr) == (
        2,
        f"error: {foreign} is not an llem results store (not an SQLite file)\n",
    )
    assert indexed_ids(results / "llem.db") == ["exp_0", "exp_1", "exp_2", "exp_3"]


def test_migrate_reports_an_up_to_date_store(llem: Llem, results: Path) -> None:
    db = results / "llem.db"
    outcome = llem("db", "migrate", "--db", str(db))
    assert (outcome.exit_code, outcome.stdout) == (
        0,
        f"{db}: up to date, store schema {STORE_SCHEMA_VERSION}\n",
    )


def test_check_passes_on_a_sound_store(llem: Llem, results: Path) -> None:
    outcome = llem("db", "check", "--db", str(results / "llem.db"))
    assert (outcome.exit_code, outcome.stdout) == (0, "ok: 4 experiments checked\n")


def test_check_finds_a_deleted_a_modified_and_a_corrupt_result(llem: Llem, results: Path) -> None:
    db = results / "llem.db"
    with ResultStore(db) as store:
        deleted = store.get("exp_0").result_path
        modified = store.get("exp_2").result_path
        corrupt = store.get("exp_1").result_path
    assert deleted is not None
    assert modified is not None
    assert corrupt is not None
    shutil.rmtree(deleted)
    document = json.loads((modified / "result.json").read_text())
    document["measurement_warnings"].append({"code": "unclassified", "message": "by hand"})
    (modified / "result.json").write_text(json.dumps(document, indent=2))
    text = (corrupt / "result.json").read_text()
    (corrupt / "result.json").write_text(text[: len(text) // 2])  # cut short

    outcome = llem("db", "check", "--db", str(db))
    assert outcome.exit_code == 1
    lines = outcome.stdout.splitlines()
    assert lines[0] == f"exp_0: {deleted / 'result.json'} is missing (moved or deleted)"
    assert lines[1].startswith(f"exp_1: {corrupt / 'result.json'} is corrupt (")
    assert lines[2] == f"exp_2: {modified / 'result.json'} changed since it was indexed"
    assert len(lines) == 3
    assert outcome.stderr == (
        f"3 problems in {db} (4 experiments checked); a result moved or changed is indexed "
        "again with `llem results import DIR`, and the rows of one deleted go with `llem db "
        "prune`; a corrupt result.json cannot be re-imported: restore it from a copy, or "
        "remove it with `llem results delete ID`\n"
    )

    quick = llem("db", "check", "--quick", "--db", str(db))
    assert (quick.exit_code, quick.stdout) == (0, "ok: 4 experiments checked\n")


def test_vacuum_reports_the_sizes(llem: Llem, results: Path) -> None:
    outcome = llem("db", "vacuum", "--db", str(results / "llem.db"))
    assert outcome.exit_code == 0, outcome.stderr
    assert re.fullmatch(
        rf"vacuumed {re.escape(str(results / 'llem.db'))}: [\d.,]+ KiB -> [\d.,]+ KiB\n",
        outcome.stdout,
    ), outcome.stdout
    assert indexed_ids(results / "llem.db") == ["exp_0", "exp_1", "exp_2", "exp_3"]


def test_db_commands_need_an_existing_store(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    for command in ("check", "vacuum", "migrate"):
        outcome = llem("db", command, "--db", str(db))
        assert (outcome.exit_code, outcome.stderr) == (
            2,
            f"error: no results store at {db}; run `llem run`, or index existing results "
            "with `llem results import DIR`\n",
        )
    assert not db.exists()

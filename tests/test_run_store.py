"""`llem run` indexes its result in the results store; a store it cannot write never costs
the user the result, and the warning says how to index it later."""

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from llem_store import ResultStore

TINY_RUN = ("-n", "6", "--max-new-tokens", "4", "--no-baseline", "--energy", "none")


def llem(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def saved_dir(stdout: str) -> Path:
    match = re.search(r"^result: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match[1].strip())


def test_a_run_is_indexed_in_the_store_beside_its_results(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    results = tmp_path / "results"
    completed = llem("run", *TINY_RUN, "-o", str(results), env=llem_env)
    assert completed.returncode == 0, completed.stderr
    directory = saved_dir(completed.stdout)
    assert "not indexed" not in completed.stderr

    listed = llem("results", "list", "--json", "--db", str(results / "llem.db"), env=llem_env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "completed"
    assert row["requests"] == 6
    assert row["model"] == "llem/tiny"
    assert row["result_path"] == str(directory.absolute())
    assert directory.name.startswith("tiny_pytorch_")
    assert (
        row["experiment_id"] == json.loads((directory / "result.json").read_text())["experiment_id"]
    )


def test_a_store_that_cannot_be_written_keeps_the_result_and_says_how_to_index_it(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    """A store this llem cannot write (one a newer llem wrote, say) does not stop the run:
    the result is saved and the message says how to index it. (A --db that is no store at all
    is refused before anything runs: apps/cli/tests/test_checks_before_measuring.py.)"""
    results = tmp_path / "results"
    db = tmp_path / "newer.db"
    ResultStore(db).close()
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA user_version = 99")
    connection.execute("PRAGMA journal_mode = DELETE")  # in the file itself, not its WAL
    connection.close()
    before = db.read_bytes()
    completed = llem("run", *TINY_RUN, "-o", str(results), "--db", str(db), env=llem_env)
    assert completed.returncode == 0, completed.stderr
    directory = saved_dir(completed.stdout)
    assert (directory / "result.json").is_file()
    warning = next(
        line for line in completed.stderr.splitlines() if line.startswith("warning: result saved")
    )
    assert warning.startswith(
        f"warning: result saved at {directory} but not indexed in {db} ({db} was written by a "
        "newer llem (store schema 99, "
    )
    assert completed.stderr.splitlines()[-1] == (
        f"not indexed: re-index with `llem results import {directory} --db {db}`"
    )
    assert db.read_bytes() == before
    assert not (results / ".staging").exists()  # nothing left behind, not even the root

    # the advice works once --db names a store
    fixed = tmp_path / "llem.db"
    imported = llem("results", "import", str(directory), "--db", str(fixed), env=llem_env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == f"indexed 1 (added 1, updated 0, unchanged 0) into {fixed}\n"

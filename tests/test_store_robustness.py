"""The results store where a user broke it, end to end through the `llem` command: a store
in a read-only directory is read, and a run killed with SIGKILL is found abandoned, marked
failed once, and its staging discarded."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llem_schema.testing import EXAMPLE_START, example_raw_result, example_result
from llem_store import ExperimentFilter, ResultStore

pytestmark = pytest.mark.slow


def llem(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def read_only_llem(
    directory: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``llem ARGS`` with ``directory`` read-only: a read-only bind mount in a mount namespace
    of its own as root (root writes through file modes), file modes otherwise."""
    if os.geteuid() != 0:
        return llem(*args, env=env)
    script = (
        'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && touch "$0/probe" 2>/dev/null '
        '&& { echo "the bind mount is writable" >&2; exit 99; }; exec "$@"'
    )
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            script,
            str(directory),
            sys.executable,
            "-m",
            "llem",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_a_store_in_a_read_only_directory_is_read(tmp_path: Path, llem_env: dict[str, str]) -> None:
    results = tmp_path / "results"
    with ResultStore(results / "llem.db") as store:
        for index in range(3):
            raw = example_raw_result(start_time=EXAMPLE_START, n_requests=4 + index)
            result = example_result([raw.model_copy(update={"experiment_id": f"exp_{index}"})])
            store.ingest(result.save(results))
    assert sorted(p.name for p in results.iterdir() if p.name.startswith("llem.db")) == [
        "llem.db"
    ]  # closed: no -wal or -shm beside it, so SQLite cannot use shared memory there
    if os.geteuid() != 0:
        for path in [results, *results.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    db, out = str(results / "llem.db"), tmp_path / "out"
    out.mkdir()
    try:
        listed = read_only_llem(results, "results", "list", "--json", "--db", db, env=llem_env)
        assert listed.returncode == 0, listed.stderr
        assert sorted(row["experiment_id"] for row in json.loads(listed.stdout)) == [
            "exp_0",
            "exp_1",
            "exp_2",
        ]
        for args in (
            ("results", "show", "exp_1"),
            ("results", "compare", "exp_0", "exp_2"),
            ("results", "export", "--all", "-o", str(out / "all.csv")),
            ("db", "backup", str(out / "copy.db")),
            ("db", "check"),
        ):
            completed = read_only_llem(results, *args, "--db", db, env=llem_env)
            assert completed.returncode == 0, (args, completed.stderr)
        assert len((out / "all.csv").read_text().splitlines()) == 4
        with ResultStore(out / "copy.db") as copy:
            assert copy.count_experiments() == 3
        # re-importing finds nothing to change; a change is refused in one line, losing nothing
        same = read_only_llem(results, "results", "import", str(results), "--db", db, env=llem_env)
        assert same.returncode == 0, same.stderr
        for args in (("results", "delete", "exp_0", "--yes"), ("db", "vacuum")):
            refused = read_only_llem(results, *args, "--db", db, env=llem_env)
            assert (refused.returncode, refused.stderr) == (
                1,
                f"error: {db} is read-only here: it can be read, not changed\n",
            ), args
    finally:
        if os.geteuid() != 0:
            for path in [results, *results.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
    with ResultStore(results / "llem.db") as store:
        assert store.count_experiments() == 3


def test_a_run_killed_with_sigkill_is_abandoned_then_failed_once_then_discarded(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    results = tmp_path / "results"
    db = str(results / "llem.db")
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llem",
            "run",
            "-n",
            "400",
            "--max-new-tokens",
            "64",
            "-o",
            str(results),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=llem_env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    running: list[str] = []
    while not running and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
        if (results / "llem.db").is_file():
            with ResultStore(results / "llem.db", create=False) as store:
                running = [s.experiment_id for s in store.running()]
    assert running, "the run never recorded itself as running"
    (experiment_id,) = running
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)

    staged = llem("results", "list", "--status", "staged", "--json", "--db", db, env=llem_env)
    assert [row["experiment_id"] for row in json.loads(staged.stdout)] == [experiment_id]
    check = llem("db", "check", "--db", db, env=llem_env)
    assert check.returncode == 1
    assert check.stdout == (
        f"{experiment_id}: recorded as running, but no process runs it (abandoned); "
        f"`llem aggregate --all --output {results} --db {db}` marks it failed\n"
    )

    first = llem("aggregate", "--all", "-o", str(results), env=llem_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"{experiment_id}: no process finished; marked failed (remove its staging with "
        f"`llem aggregate {experiment_id} --discard`)\n"
    )
    again = llem("aggregate", "--all", "-o", str(results), env=llem_env)
    assert again.returncode == 0, again.stderr  # not exit 1 on every later call
    with ResultStore(results / "llem.db") as store:
        (failed,) = store.list_experiments(ExperimentFilter(statuses=["failed"]))
    assert (failed.experiment_id, failed.error) == (experiment_id, "no process finished")
    assert llem("db", "check", "--db", db, env=llem_env).returncode == 0

    discarded = llem("aggregate", experiment_id, "--discard", "-o", str(results), env=llem_env)
    assert (discarded.returncode, discarded.stdout) == (
        0,
        f"{experiment_id}: discarded its staging\n",
    )
    staged = llem("results", "list", "--status", "staged", "--json", "--db", db, env=llem_env)
    assert json.loads(staged.stdout) == []
    assert not (results / ".staging").exists()  # the staging root goes with its last run
    shutil.rmtree(results)


FIXTURES = Path(__file__).resolve().parents[1] / "packages" / "llem-store" / "tests" / "fixtures"

_UNCHECKPOINTED_WRITE = """
import os, sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA wal_autocheckpoint = 0")
connection.execute("UPDATE experiments SET name = 'changed after the last checkpoint'")
os._exit(0)  # killed, as it were: the change stays in the write-ahead log
"""


def test_read_only_stores_of_an_older_schema_or_with_a_pending_log(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    results = tmp_path / "results"
    shutil.copytree(FIXTURES / "store-v2", results)  # written by the llem of store schema 2
    db = str(results / "llem.db")
    if os.geteuid() != 0:
        for path in [results, *results.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    try:
        listed = read_only_llem(results, "results", "list", "--json", "--db", db, env=llem_env)
        assert listed.returncode == 0, listed.stderr
        assert [row["experiment_id"] for row in json.loads(listed.stdout)] == []  # incomplete
        every = read_only_llem(
            results, "results", "list", "--all", "--json", "--db", db, env=llem_env
        )
        assert [row["experiment_id"] for row in json.loads(every.stdout)] == ["exp-two-processes"]
        assert "read through a copy migrated in memory" in every.stderr
    finally:
        if os.geteuid() != 0:
            for path in [results, *results.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
    with ResultStore(results / "llem.db") as store:  # where it can be written: migrated
        assert store.schema_version == 3

    subprocess.run([sys.executable, "-c", _UNCHECKPOINTED_WRITE, db], check=True)
    (results / "llem.db-shm").unlink()
    assert (results / "llem.db-wal").stat().st_size > 0
    if os.geteuid() != 0:
        results.chmod(0o555)
    try:
        refused = read_only_llem(results, "results", "list", "--all", "--db", db, env=llem_env)
    finally:
        results.chmod(0o755)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: {db} cannot be read here: changes in its write-ahead log (llem.db-wal) need a "
        "file SQLite cannot create in this read-only directory; open it once where it can be "
        "written, or copy the whole results directory\n"
    )

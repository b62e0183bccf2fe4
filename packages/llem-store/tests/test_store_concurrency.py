"""Real processes writing one store: at the same time, and killed in the middle of a write."""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llem_schema import ExperimentResult
from llem_store import ResultStore

pytestmark = pytest.mark.slow

_INGEST = """
import sys, time
from pathlib import Path
from llem_store import ResultStore

directories, db, go = sorted(Path(sys.argv[1]).iterdir()), Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.002)
with ResultStore(db) as store:
    for directory in directories:
        store.ingest(directory)
        print(directory.name, flush=True)
"""


def copies(template: Path, root: Path, prefix: str, count: int) -> list[Path]:
    """``count`` copies of a saved result, each a distinct experiment (its id replaced)."""
    text = (template / "result.json").read_text()
    old_id = ExperimentResult.from_json(template).experiment_id
    directories = []
    for index in range(count):
        directory = root / f"{prefix}{index:04d}"
        directory.mkdir(parents=True)
        (directory / "result.json").write_text(text.replace(old_id, f"{prefix}{index:04d}"))
        directories.append(directory)
    return directories


_READ = """
import sys, time
from pathlib import Path
from llem_store import NoStoreError, ResultStore

db, go, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while True:  # until a writer has created the store
    try:
        store = ResultStore(db, create=False)
        break
    except NoStoreError:
        time.sleep(0.002)
counts = []
with store:
    while not stop.exists():
        counts.append(store.count_experiments())
        store.list_experiments(limit=50)
print(len(counts), int(counts == sorted(counts)), counts[-1] if counts else -1)
"""


def start(directories: Path, db: Path, go: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _INGEST, str(directories), str(db), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_eight_processes_ingesting_at_once_lose_no_row(
    tmp_path: Path, template_result: ExperimentResult
) -> None:
    template = template_result.save(tmp_path / "template")
    results = tmp_path / "results"
    for worker in range(8):
        copies(template, results / f"worker{worker}", f"w{worker}-", 100)
    db, go, stop = results / "llem.db", tmp_path / "go", tmp_path / "stop"
    # all eight create the store and switch it to WAL at the same moment, then write, while
    # two readers list and count all along
    writers = [start(results / f"worker{w}", db, go) for w in range(8)]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _READ, str(db), str(go), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    outcomes = [writer.communicate(timeout=300) for writer in writers]
    stop.touch()
    for writer, (out, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err
        assert len(out.split()) == 100
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        reads, monotonic, last = map(int, out.split())
        assert reads > 0
        assert monotonic == 1  # a reader never saw a result appear and vanish
        assert 0 <= last <= 800
    with ResultStore(db) as store:
        assert store.count_experiments() == 800
        assert store.check().ok
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM requests").fetchone() == (800 * 12,)
        assert connection.execute("SELECT count(*) FROM warnings").fetchone() == (800,)


def test_a_process_killed_mid_ingest_leaves_whole_experiments_only(
    tmp_path: Path, template_result: ExperimentResult
) -> None:
    template = template_result.save(tmp_path / "template")
    results = tmp_path / "results"
    copies(template, results / "batch", "k-", 150)
    db, go = results / "llem.db", tmp_path / "go"
    go.touch()
    kills = 0
    for after in (5, 17, 29, 41, 53):
        writer = start(results / "batch", db, go)
        assert writer.stdout is not None
        for _ in range(after):  # only new results print slowly; repeats are quick
            if not writer.stdout.readline():
                break
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()
        kills += writer.returncode == -signal.SIGKILL
        with ResultStore(db) as store:
            report = store.check()
            assert report.ok, report.problems  # request counts match for every experiment
    assert kills >= 4  # the writer was really killed mid-work, not after finishing
    with ResultStore(db) as store:
        before = store.count_experiments()
        assert 0 < before < 150
        store.import_tree(results / "batch")
        assert store.count_experiments() == 150
        assert store.check().ok

"""Crash safety: an exporter killed with SIGKILL at random moments, many times over, leaves
the previous complete file, never a partial one, and only clearly named temporaries.

A long-lived helper process imports llem once, then forks one writer per round; the writer
exports two versions of the results (B, A, B, ...) over the same target in a loop until the
test kills it with SIGKILL after a seeded random delay. After every kill the target must
parse completely as version A or version B.
"""

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Final

import openpyxl
import pyarrow.parquet as pq
import pytest

from llem_persistence.exporters import EXPORT_FORMATS, export, export_json
from llem_schema import ExperimentResult
from llem_schema.testing import example_raw_result, example_result

pytestmark = pytest.mark.slow

KILLS_PER_FORMAT: Final = 10
SEED: Final = 20261122

# Imports llem once, then forks a writer per "start" and reaps it on "reap".
HELPER: Final = r"""
import json, os, sys, tempfile
from llem_schema import ExperimentResult
from llem_persistence.exporters import export

# Python settles its temporary directory on first use by writing and removing a probe file
# there; settled before the fork, no kill can leave the probe behind in the scratch directory.
tempfile.gettempdir()

def load(path):
    with open(path, encoding="utf-8") as handle:
        return [ExperimentResult.model_validate(item) for item in json.load(handle)]

print("ready", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "start":
        fmt, target, first, second, progress = args
        versions = (load(first), load(second))
        pid = os.fork()
        if pid == 0:
            try:
                index = 0
                while True:
                    export(versions[index % 2], target, format=fmt)
                    index += 1
                    with open(progress, "w") as handle:  # exports completed so far
                        handle.write(str(index))
            finally:
                os._exit(3)
        print(pid, flush=True)
    elif command == "reap":
        _, status = os.waitpid(int(args[0]), 0)
        print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1, flush=True)
"""


def _versions(count: int) -> tuple[list[ExperimentResult], list[ExperimentResult]]:
    """Version A (``count`` results) and version B (half as many more)."""
    base = example_result(
        [example_raw_result(n_requests=16)], measurement_warnings=["short window: run longer"]
    )
    a = [base.model_copy(update={"experiment_id": f"a_{i:03d}"}) for i in range(count)]
    b = [base.model_copy(update={"experiment_id": f"b_{i:03d}"}) for i in range(count * 3 // 2)]
    return a, b


def _parse_csv(path: Path) -> object:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _parse_json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def _parse_parquet(path: Path) -> object:
    return pq.read_table(path).to_pylist()


def _parse_xlsx(path: Path) -> object:
    workbook = openpyxl.load_workbook(path, read_only=True)
    try:
        return {
            name: list(workbook[name].iter_rows(values_only=True)) for name in workbook.sheetnames
        }
    finally:
        workbook.close()


PARSERS: Final[dict[str, Callable[[Path], object]]] = {
    "csv": _parse_csv,
    "json": _parse_json,
    "parquet": _parse_parquet,
    "xlsx": _parse_xlsx,
}


class Helper:
    """The helper process and the protocol to it."""

    def __init__(self, scratch: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(scratch)},
        )
        assert self._read() == "ready"

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        return self.process.stdin, self.process.stdout

    def _read(self) -> str:
        return self._pipes()[1].readline().strip()

    def ask(self, *words: str) -> str:
        stdin, _ = self._pipes()
        stdin.write(" ".join(words) + "\n")
        stdin.flush()
        return self._read()

    def close(self) -> None:
        stdin, stdout = self._pipes()
        stdin.close()
        self.process.wait(timeout=30)
        stdout.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def helper(scratch: Path) -> Iterator[Helper]:
    process = Helper(scratch)
    yield process
    process.close()


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_sigkill_leaves_the_previous_complete_file(
    tmp_path: Path, helper: Helper, scratch: Path, fmt: str
) -> None:
    a, b = _versions(10 if fmt == "xlsx" else 30)  # each export takes ~10-100 ms
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    export_json(a, inputs / "a.json")
    export_json(b, inputs / "b.json")
    parse = PARSERS[fmt]
    export(a, inputs / f"a.{fmt}", format=fmt)
    started = time.perf_counter()
    export(b, inputs / f"b.{fmt}", format=fmt)
    export_s = time.perf_counter() - started
    expected = {"A": parse(inputs / f"a.{fmt}"), "B": parse(inputs / f"b.{fmt}")}
    assert expected["A"] != expected["B"]

    out = tmp_path / "out"
    out.mkdir()
    target = out / f"results.{fmt}"
    export(a, target, format=fmt)  # the previous complete file
    rng = random.Random(f"{SEED}-{fmt}")
    seen: list[str] = []
    completed = 0
    for round_index in range(KILLS_PER_FORMAT):
        progress = tmp_path / f"progress-{round_index}"
        pid = int(
            helper.ask(
                "start",
                fmt,
                str(target),
                str(inputs / "b.json"),
                str(inputs / "a.json"),
                str(progress),
            )
        )
        try:
            if round_index == 0:  # let one export complete, so a replacement surely happened
                deadline = time.monotonic() + 120
                while not progress.exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 3.0 * export_s + 0.02))
        finally:
            os.kill(pid, signal.SIGKILL)
            # The writer was still running when killed: it had not failed on its own.
            assert helper.ask("reap", str(pid)) == str(int(signal.SIGKILL))
        assert target.is_file(), "the previous file disappeared"
        content = parse(target)
        matches = [name for name, version in expected.items() if content == version]
        assert matches, "the target is not a complete export of either version"
        seen.append(matches[0])
        completed += int(progress.read_text() or 0) if progress.exists() else 0

    assert completed > 0, f"no export completed before a kill ({seen}); the test proved nothing"
    temporaries = [p.name for p in out.iterdir() if p != target]
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]+\.tmp")
    assert all(pattern.fullmatch(name) for name in temporaries), temporaries
    assert temporaries, "no kill landed mid-write; the test proved nothing"
    if fmt == "xlsx":
        assert all(p.name.startswith("llem-xlsx-") for p in scratch.iterdir())

"""``llem results show`` and ``compare``, and the one-line errors every results command gives
for an unknown id, an ambiguous one, and a missing, foreign or corrupt store."""

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from llem_store import ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


def db_of(results: Path) -> str:
    return str(results / "llem.db")


def test_show_prints_identity_config_metrics_statistics_and_warnings(
    llem: Llem, results: Path
) -> None:
    outcome = llem("results", "show", "exp_1", "--db", db_of(results))
    assert outcome.exit_code == 0, outcome.stderr
    with ResultStore(results / "llem.db") as store:
        summary = store.get("exp_1")
        stats = store.request_stats("exp_1")
    assert summary.result_path is not None
    assert summary.total_energy_j is not None
    lines = [" ".join(line.split()) for line in outcome.stdout.splitlines()]
    for expected in (
        "id exp_1",
        "status completed",
        f"path {summary.result_path}",
        "model org/model-b",
        "backend pytorch example 1.0",
        "precision fp16",
        "batch size 1",
        "n (prompts) 8",
        "max new tokens 16",
        "processes 1",
        "requests 5",
        f"energy J (raw) {summary.total_energy_j:,.2f}",
        f"output tokens/s {summary.output_tokens_per_s:,.2f}",
        "measurement (short_window): measurement window was 10.0 s, shorter than 60 s",
    ):
        assert expected in lines, expected
    ttft = stats["ttft_ms"]
    assert ttft is not None
    row = next(line for line in lines if line.startswith("ttft_ms "))
    assert row.split()[1:4] == ["5", f"{ttft.mean_ms:.2f}", f"{ttft.median_ms:.2f}"]


def test_show_accepts_a_unique_beginning_of_the_id(llem: Llem, tmp_path: Path) -> None:
    from llem_schema.testing import example_result

    directory = example_result().save(tmp_path)
    with ResultStore(tmp_path / "llem.db") as store:
        store.ingest(directory)
    outcome = llem("results", "show", "tiny_pytorch", "--db", str(tmp_path / "llem.db"))
    assert outcome.exit_code == 0, outcome.stderr
    assert "id tiny_pytorch_2026-11-22T14-03-05_0a1b2c" in [
        " ".join(line.split()) for line in outcome.stdout.splitlines()
    ]


def test_every_id_command_takes_the_result_directory_a_run_printed(
    llem: Llem, results: Path
) -> None:
    """``llem run`` prints ``result: results/<id>`` and ``id: <id>``: either opens it."""
    directory = results / "exp_2"
    assert directory.is_dir()  # a result directory is named by its experiment id
    for target in (str(directory), str(directory / "result.json"), "exp_2"):
        shown = llem("results", "show", target, "--db", db_of(results))
        assert shown.exit_code == 0, shown.stderr
        assert "id exp_2" in [" ".join(line.split()) for line in shown.stdout.splitlines()]
    compared = llem("results", "compare", str(directory), "exp_1", "--db", db_of(results))
    assert compared.exit_code == 0, compared.stderr
    assert "exp_2" in compared.stdout
    missing = llem("results", "show", str(results / "nowhere"), "--db", db_of(results))
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"error: no experiment '{results / 'nowhere'}' in ")


def test_show_raw_prints_the_result_file_as_is(llem: Llem, results: Path) -> None:
    outcome = llem("results", "show", "exp_2", "--raw", "--db", db_of(results))
    assert outcome.exit_code == 0, outcome.stderr
    with ResultStore(results / "llem.db") as store:
        path = store.get("exp_2").result_path
    assert path is not None
    assert outcome.stdout == (path / "result.json").read_text()


def test_show_json_holds_summary_statistics_warnings_and_config(llem: Llem, results: Path) -> None:
    outcome = llem("results", "show", "exp_1", "--json", "--db", db_of(results))
    assert outcome.exit_code == 0, outcome.stderr
    shown = json.loads(outcome.stdout)
    with ResultStore(results / "llem.db") as store:
        assert shown["summary"] == store.get("exp_1").to_json_dict()
        assert shown["config"] == store.config("exp_1")
        stats = store.request_stats("exp_1")
    assert sorted(shown) == ["config", "request_stats", "result_file", "summary", "warnings"]
    assert shown["result_file"] == "matches"
    assert shown["warnings"] == [
        {
            "source": "measurement",
            "code": "short_window",
            "message": "measurement window was 10.0 s, shorter than 60 s",
        }
    ]
    ttft = stats["ttft_ms"]
    assert ttft is not None
    assert shown["request_stats"]["ttft_ms"] == ttft.model_dump(mode="json")
    assert shown["config"]["precision"] == "fp16"


def test_show_of_a_run_without_a_result_file(llem: Llem, results: Path) -> None:
    from llem_schema.testing import example_config

    with ResultStore(results / "llem.db") as store:
        store.mark_running("exp_running", example_config())
    outcome = llem("results", "show", "exp_running", "--raw", "--db", db_of(results))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        "error: exp_running has no result file (status running)\n",
    )
    shown = llem("results", "show", "exp_running", "--db", db_of(results))
    assert shown.exit_code == 0
    assert "status running" in [" ".join(line.split()) for line in shown.stdout.splitlines()]


def test_compare_puts_experiments_in_columns_with_ratios(llem: Llem, results: Path) -> None:
    outcome = llem("results", "compare", "exp_0", "exp_2", "exp_3", "--db", db_of(results))
    assert outcome.exit_code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    header = next(line for line in lines if "exp_0" in line)
    assert header.split() == ["exp_0", "exp_2", "exp_3"]
    with ResultStore(results / "llem.db") as store:
        first, second, _ = store.compare(["exp_0", "exp_2", "exp_3"])
    assert first.output_tokens_per_j is not None
    assert second.output_tokens_per_j is not None
    ratio = second.output_tokens_per_j / first.output_tokens_per_j
    row = next(line for line in lines if line.startswith("output tokens/J vs first"))
    assert row.split()[-3:] == ["1.00x", f"{ratio:.2f}x", "-"]  # exp_3 has no energy
    model = next(line for line in lines if line.startswith("model"))
    assert model.split()[1:] == ["org/model-a", "org/model-a", "org/model-b"]


def test_compare_json(llem: Llem, results: Path) -> None:
    outcome = llem("results", "compare", "exp_1", "exp_0", "--json", "--db", db_of(results))
    assert outcome.exit_code == 0, outcome.stderr
    data = json.loads(outcome.stdout)
    with ResultStore(results / "llem.db") as store:
        expected = [s.to_json_dict() for s in store.compare(["exp_1", "exp_0"])]
    assert data["experiments"] == expected
    energy = [e["total_energy_j"] for e in expected]
    assert data["ratios"]["total_energy_j"] == [1.0, energy[1] / energy[0]]
    assert sorted(data["ratios"]) == [
        "e2e_median_ms",
        "energy_per_output_token_j",
        "output_tokens_per_j",
        "output_tokens_per_s",
        "total_energy_j",
        "ttft_median_ms",
    ]


@pytest.mark.parametrize("suffix", ["json", "csv", "xlsx"])
def test_compare_output_keeps_the_comparison_as_a_file(
    llem: Llem, results: Path, tmp_path: Path, suffix: str
) -> None:
    import csv

    import openpyxl

    target = tmp_path / f"comparison.{suffix}"
    args = ["results", "compare", "exp_0", "exp_2", "--db", db_of(results)]
    outcome = llem(*args, "-o", str(target))
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stderr == f"comparison of 2 experiments kept in {target}\n"
    assert "exp_0" in outcome.stdout  # the table is still shown
    rows: list[dict[str, object]]
    if suffix == "json":
        rows = json.loads(target.read_text())
    elif suffix == "csv":
        with target.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        book = openpyxl.load_workbook(target, read_only=True)
        try:  # a read-only workbook holds its file open until closed
            header, *cells = list(book.worksheets[0].iter_rows(values_only=True))
        finally:
            book.close()
        rows = [dict(zip(map(str, header), row, strict=True)) for row in cells]
    assert [row["experiment_id"] for row in rows] == ["exp_0", "exp_2"]
    with ResultStore(results / "llem.db") as store:
        first, second = store.compare(["exp_0", "exp_2"])
    assert first.total_energy_j
    assert second.total_energy_j
    ratio = float(str(rows[1]["total_energy_j_vs_first"]))
    assert ratio == pytest.approx(second.total_energy_j / first.total_energy_j)
    assert float(str(rows[0]["total_energy_j_vs_first"])) == 1.0
    again = llem(*args, "-o", str(target))
    assert (again.exit_code, again.stderr) == (
        2,
        f"error: {target} exists; choose another file, or pass --overwrite\n",
    )


def test_compare_needs_two(llem: Llem, results: Path) -> None:
    outcome = llem("results", "compare", "exp_1", "--db", db_of(results))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        "error: compare needs two or more experiment ids\n",
    )


@pytest.mark.parametrize(
    "args", [("show", "exp_9"), ("compare", "exp_0", "exp_9"), ("export", "exp_9", "-o", "x.csv")]
)
def test_an_unknown_id_is_exit_2(llem: Llem, results: Path, args: tuple[str, ...]) -> None:
    outcome = llem("results", *args, "--db", db_of(results))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        f"error: no experiment 'exp_9' in {db_of(results)}; see `llem results list --all`\n",
    )


def test_an_ambiguous_beginning_is_exit_2(llem: Llem, results: Path) -> None:
    outcome = llem("results", "show", "exp", "--db", db_of(results))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        "error: 'exp' matches several experiments (exp_0, exp_1, exp_2, exp_3): "
        "give more of the id\n",
    )


@pytest.mark.parametrize("command", [("list",), ("show", "exp_0"), ("compare", "a", "b")])
def test_a_missing_store_is_exit_2_and_says_what_to_do(
    llem: Llem, tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "llem.db"
    outcome = llem("results", *command, "--db", str(db))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        f"error: no results store at {db}; run `llem run`, or index existing results with "
        "`llem results import DIR`\n",
    )
    assert not db.exists()  # reading never creates a store


def test_a_foreign_file_is_exit_2(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("my notes\n")
    outcome = llem("results", "list", "--db", str(db))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        f"error: {db} is not an llem results store (not an SQLite file); point --db at an "
        "llem.db\n",
    )
    assert db.read_text() == "my notes\n"


def test_another_applications_sqlite_database_is_exit_2(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    outcome = llem("results", "list", "--db", str(db))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        f"error: {db} is an SQLite database of another application, not an llem results "
        "store; point --db at an llem.db\n",
    )


def test_a_corrupt_store_is_exit_1_and_says_how_to_recover(llem: Llem, results: Path) -> None:
    db = results / "llem.db"
    data = bytearray(db.read_bytes())
    data[16:100] = bytes(84)  # the header fields after the magic string
    db.write_bytes(bytes(data))
    outcome = llem("results", "list", "--db", str(db))
    assert (outcome.exit_code, outcome.stderr) == (
        1,
        f"error: {db} is corrupt (file is not a database); restore a backup with "
        f"`llem db restore FILE --db {db}`, or move it aside and rebuild the index with "
        f"`llem results import {results} --db {db}`\n",
    )


def test_a_result_directory_deleted_since_indexing_is_exit_2(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    with ResultStore(results / "llem.db") as store:
        directory = store.get("exp_0").result_path
    assert directory is not None
    shutil.rmtree(directory)
    message = (
        f"error: exp_0: {directory / 'result.json'} is missing (moved or deleted); re-index "
        "with `llem results import DIR`\n"
    )
    shown = llem("results", "show", "exp_0", "--raw", "--db", db_of(results))
    assert (shown.exit_code, shown.stderr) == (2, message)
    target = tmp_path / "out.csv"
    exported = llem(
        "results", "export", "exp_1", "exp_0", "-o", str(target), "--db", db_of(results)
    )
    assert (exported.exit_code, exported.stderr) == (2, message)
    assert not target.exists()


def test_show_prints_each_aggregation_note_once(llem: Llem, tmp_path: Path) -> None:
    from llem_persistence import StagingRepository
    from llem_schema.testing import example_config, example_raw_result

    results = tmp_path / "results"
    config = example_config()
    staging = StagingRepository(results)
    staging.begin(config, "run_a", 2)  # two processes launched, one result: a note
    raw = example_raw_result(config=config, process_index=0, num_processes=2)
    staging.save_raw("run_a", raw.model_copy(update={"experiment_id": "run_a"}))
    assert llem("aggregate", "run_a", "--output", str(results)).exit_code == 0

    outcome = llem("results", "show", "run_a", "--db", db_of(results))
    assert outcome.exit_code == 0, outcome.stderr
    note = "processes 1 of 2 have no result; the figures cover the processes that finished"
    lines = [line for line in outcome.stdout.splitlines() if note in line]
    assert lines == [f"  aggregation (incomplete): incomplete: {note}"]
    assert " ".join(outcome.stdout.split()).count("warnings 1") == 1  # the count says one too
    shown = json.loads(llem("results", "show", "run_a", "--json", "--db", db_of(results)).stdout)
    assert [w["code"] for w in shown["warnings"]] == ["incomplete"]

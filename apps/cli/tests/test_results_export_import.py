"""``llem results export`` (every format, read back by another reader and compared with the
store) and ``llem results import`` (a corrupt result directory is skipped and named)."""

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import openpyxl
import pyarrow.parquet as pq
import pytest

from llem_persistence import aggregate_results
from llem_schema import ExperimentResult
from llem_schema.testing import example_config, example_raw_result
from llem_store import ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]
MakeResult = Callable[..., ExperimentResult]
Row = dict[str, object]


def read_csv(path: Path) -> list[Row]:
    with path.open(newline="") as handle:
        return [
            {k: (float(v) if k != "experiment_id" else v) for k, v in row.items() if k in KEYS}
            for row in csv.DictReader(handle)
        ]


def read_json(path: Path) -> list[Row]:
    results = json.loads(path.read_text())
    return [
        {
            "experiment_id": r["experiment_id"],
            "total_energy_j": r["total_energy_j"],
            "output_tokens_per_s": r["output_tokens_per_s"],
            "efficiency_output_tokens_per_j": r["efficiency"]["output_tokens_per_j"],
        }
        for r in results
    ]


def read_parquet(path: Path) -> list[Row]:
    return [{k: v for k, v in row.items() if k in KEYS} for row in pq.read_table(path).to_pylist()]


def read_xlsx(path: Path) -> list[Row]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(workbook["summary"].iter_rows(values_only=True))
    finally:
        workbook.close()
    header = [str(cell) for cell in rows[0]]
    table = [dict(zip(header, row, strict=False)) for row in rows[1:] if row[0] is not None]
    return [{k: v for k, v in row.items() if k in KEYS} for row in table]


KEYS = ("experiment_id", "total_energy_j", "output_tokens_per_s", "efficiency_output_tokens_per_j")
READERS: dict[str, Callable[[Path], list[Row]]] = {
    "csv": read_csv,
    "json": read_json,
    "parquet": read_parquet,
    "xlsx": read_xlsx,
}


def store_rows(db: Path, ids: list[str]) -> list[Row]:
    with ResultStore(db) as store:
        return [
            {
                "experiment_id": s.experiment_id,
                "total_energy_j": s.total_energy_j,
                "output_tokens_per_s": s.output_tokens_per_s,
                "efficiency_output_tokens_per_j": s.output_tokens_per_j,
            }
            for s in store.compare(ids)
        ]


@pytest.mark.parametrize("file_format", sorted(READERS))
def test_export_writes_each_format_and_it_reads_back_as_the_store_says(
    llem: Llem, results: Path, tmp_path: Path, file_format: str
) -> None:
    target = tmp_path / f"out.{file_format}"
    outcome = llem(
        "results", "export", "exp_2", "exp_0", "-o", str(target), "--db", str(results / "llem.db")
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout == f"exported 2 experiments to {target} ({file_format})\n"
    found = READERS[file_format](target)
    expected = store_rows(results / "llem.db", ["exp_2", "exp_0"])
    assert [row["experiment_id"] for row in found] == ["exp_2", "exp_0"]  # the order asked
    for exported, indexed in zip(found, expected, strict=True):
        assert exported == pytest.approx(indexed)


@pytest.mark.parametrize("suffix", ["parquet", "csv", "xlsx"])
def test_export_requests_writes_one_row_per_request_of_the_experiments_asked(
    llem: Llem, results: Path, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"requests.{suffix}"
    db = str(results / "llem.db")
    outcome = llem(
        "results", "export", "--requests", "exp_2", "exp_0", "-o", str(target), "--db", db
    )
    assert outcome.exit_code == 0, outcome.stderr
    records = [
        (result.experiment_id, process.process_index, record.request_index, record.ttft_ms)
        for result in (ExperimentResult.from_json(results / name) for name in ("exp_2", "exp_0"))
        for process in result.process_results
        for record in process.requests
    ]
    assert outcome.stdout == (
        f"exported {len(records)} requests of 2 experiments to {target} ({suffix})\n"
    )
    rows: list[dict[str, Any]]
    if suffix == "parquet":
        rows = pq.read_table(target).to_pylist()
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
    found = [
        (
            row["experiment_id"],
            int(row["process_index"]),
            int(row["request_index"]),
            float(row["ttft_ms"]),
        )
        for row in rows
    ]
    assert [row[:3] for row in found] == [record[:3] for record in records]
    assert [row[3] for row in found] == pytest.approx([record[3] for record in records])
    refused = llem(
        "results", "export", "--requests", "exp_2", "-o", str(tmp_path / "r.json"), "--db", db
    )
    assert (refused.exit_code, refused.stderr) == (
        2,
        "error: --requests writes csv, parquet, xlsx, not json\n",
    )


def test_export_format_option_wins_over_the_suffix(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    target = tmp_path / "summary.txt"
    outcome = llem(
        "results",
        "export",
        "exp_1",
        "--format",
        "csv",
        "-o",
        str(target),
        "--db",
        str(results / "llem.db"),
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert [row["experiment_id"] for row in read_csv(target)] == ["exp_1"]


def test_export_all_includes_incomplete_results(llem: Llem, results: Path, tmp_path: Path) -> None:
    config = example_config()
    raw = example_raw_result(config=config, num_processes=2).model_copy(
        update={"experiment_id": "exp_partial"}
    )
    partial = aggregate_results(
        [raw], effective_config=config.model_dump(mode="json"), expected_processes=2
    )
    with ResultStore(results / "llem.db") as store:
        store.ingest(partial.save(results))
        store.mark_running("exp_running", config)  # no result: not exported
    target = tmp_path / "all.json"
    outcome = llem(
        "results", "export", "--all", "-o", str(target), "--db", str(results / "llem.db")
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout == f"exported 5 experiments to {target} (json)\n"
    exported = [r["experiment_id"] for r in json.loads(target.read_text())]
    assert sorted(exported) == ["exp_0", "exp_1", "exp_2", "exp_3", "exp_partial"]


def test_export_of_a_study_takes_its_experiments_only(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    with ResultStore(results / "llem.db") as store:
        store.register_study("sweep_2026_ab12", "sweep")
        store.link_to_study("exp_1", "sweep_2026_ab12")
        store.link_to_study("exp_2", "sweep_2026_ab12")
    target = tmp_path / "sweep.json"
    db = ("--db", str(results / "llem.db"))
    outcome = llem("results", "export", "--study", "sweep", "-o", str(target), *db)
    assert outcome.exit_code == 0, outcome.stderr
    assert [r["experiment_id"] for r in json.loads(target.read_text())] == ["exp_1", "exp_2"]
    listed = llem("results", "list", "--study", "sweep_2026_ab12", "--json", *db)
    assert [r["experiment_id"] for r in json.loads(listed.stdout)] == ["exp_2", "exp_1"]
    again = llem("results", "export", "--study", "sweep", "-o", str(target), *db)
    assert (again.exit_code, again.stderr) == (
        2,
        f"error: {target} exists; choose another file, or pass --overwrite\n",
    )
    replaced = llem("results", "export", "--study", "sweep", "-o", str(target), "--overwrite", *db)
    assert replaced.exit_code == 0, replaced.stderr
    missing = llem("results", "export", "--study", "nope", "-o", str(tmp_path / "n.json"), *db)
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"error: no study 'nope' in {results / 'llem.db'}\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "x.csv"), "error: give experiment ids, --study NAME or --all\n"),
        (("exp_0", "--all", "-o", "x.csv"), "error: give experiment ids, --study NAME or --all\n"),
        (
            ("exp_0", "-o", "x.txt"),
            "error: cannot tell the export format of x.txt from its suffix '.txt': name it "
            ".csv, .json, .parquet or .xlsx, or pass --format one of csv, json, parquet, xlsx\n",
        ),
    ],
)
def test_export_usage_errors(
    llem: Llem, results: Path, args: tuple[str, ...], message: str
) -> None:
    outcome = llem("results", "export", *args, "--db", str(results / "llem.db"))
    assert (outcome.exit_code, outcome.stderr) == (2, message)


def test_import_indexes_a_tree_and_names_what_it_skipped(
    llem: Llem, make_result: MakeResult, tmp_path: Path
) -> None:
    tree = tmp_path / "old"
    good = [make_result(f"exp_{i}").save(tree / f"batch{i}") for i in range(3)]
    corrupt = tree / "broken_run"
    corrupt.mkdir()
    (corrupt / "result.json").write_text('{"schema_version": "1.0", "experiment_id": ')
    db = tmp_path / "llem.db"

    outcome = llem("results", "import", str(tree), "--db", str(db))
    assert outcome.exit_code == 1  # the good ones indexed, the bad one named, then exit 1
    assert outcome.stdout == f"indexed 3 (added 3, updated 0, unchanged 0) into {db}\n"
    (warning,) = outcome.stderr.splitlines()
    assert warning.startswith(f"warning: skipped {corrupt}: ")
    with ResultStore(db) as store:
        indexed = sorted(str(s.result_path) for s in store.list_experiments())
    assert indexed == sorted(str(d.absolute()) for d in good)

    again = llem("results", "import", str(tree), "--db", str(db))
    assert again.stdout == f"indexed 3 (added 0, updated 0, unchanged 3) into {db}\n"


def test_import_of_only_corrupt_results_is_exit_1_too(llem: Llem, tmp_path: Path) -> None:
    corrupt = tmp_path / "tree" / "run"
    corrupt.mkdir(parents=True)
    (corrupt / "result.json").write_text("not json")
    outcome = llem("results", "import", str(tmp_path / "tree"), "--db", str(tmp_path / "llem.db"))
    assert outcome.exit_code == 1
    assert (
        outcome.stdout
        == f"indexed 0 (added 0, updated 0, unchanged 0) into {tmp_path / 'llem.db'}\n"
    )
    assert outcome.stderr.startswith(f"warning: skipped {corrupt}: ")


def test_import_of_a_missing_directory_is_exit_2(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    outcome = llem("results", "import", str(tmp_path / "nope"), "--db", str(db))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        f"error: {tmp_path / 'nope'} is not a directory\n",
    )
    assert not db.exists()

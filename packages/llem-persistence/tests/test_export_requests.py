"""The per-request export: every request of every result, one row each, read back equal to the
result's own records from CSV, Parquet and Excel."""

import csv
import math
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from llem_persistence import ExportError, export_requests
from llem_persistence.exporters import REQUEST_COLUMNS
from llem_schema import ExperimentResult
from llem_schema.metrics import percentile
from llem_schema.testing import example_raw_result, example_result

NAMES = [column.name for column in REQUEST_COLUMNS]


def two_results() -> list[ExperimentResult]:
    first = example_result(
        [example_raw_result(n_requests=3, seed=1), example_raw_result(n_requests=2, seed=2)]
    )
    second = example_result([example_raw_result(n_requests=4, seed=3)]).model_copy(
        update={"experiment_id": "second"}
    )
    return [first, second]


def expected_rows(results: list[ExperimentResult]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for result in results:
        for process in result.process_results:
            for record in process.requests:
                gaps = sorted(record.itl_ms)
                rows.append(
                    {
                        "experiment_id": result.experiment_id,
                        "process_index": process.process_index,
                        "request_index": record.request_index,
                        "batch_index": record.batch_index,
                        "input_tokens": record.input_tokens,
                        "output_tokens": record.output_tokens,
                        "ttft_ms": record.ttft_ms,
                        "e2e_ms": record.e2e_ms,
                        "itl_mean_ms": math.fsum(gaps) / len(gaps) if gaps else None,
                        "tpot_ms": record.tpot_ms,
                        "start_s": record.start_s,
                        "scheduled_s": record.scheduled_s,
                        "itl_p50_ms": percentile(gaps, 50) if gaps else None,
                        "itl_p99_ms": percentile(gaps, 99) if gaps else None,
                        "itl_max_ms": gaps[-1] if gaps else None,
                        "error": record.error,
                    }
                )
    return rows


def assert_same(row: list[object], wanted: dict[str, object]) -> None:
    """Equal cell by cell (floats to 1e-12: Excel keeps 15 significant digits)."""
    assert len(row) == len(wanted)
    for value, (name, expected) in zip(row, wanted.items(), strict=True):
        if isinstance(expected, float):
            assert value == pytest.approx(expected, rel=1e-12), name
        else:
            assert value == expected, name


def test_parquet_holds_every_request_typed(tmp_path: Path) -> None:
    results = two_results()
    target = tmp_path / "requests.parquet"
    written = export_requests(iter(results), target)
    assert (written.experiments, written.requests) == (2, 9)
    table = pq.read_table(target)
    assert table.column_names == NAMES
    for row, wanted in zip(table.to_pylist(), expected_rows(results), strict=True):
        assert row == wanted  # exactly: Parquet keeps every float64
    assert str(table.schema.field("ttft_ms").type) == "double"
    assert str(table.schema.field("request_index").type) == "int64"


def test_csv_holds_every_request_as_text(tmp_path: Path) -> None:
    results = two_results()
    target = tmp_path / "requests.csv"
    export_requests(results, target)
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = expected_rows(results)
    assert len(rows) == len(expected) == 9
    for row, wanted in zip(rows, expected, strict=True):
        assert list(row) == NAMES
        for name, value in wanted.items():
            if value is None:
                assert row[name] == "", name
            elif isinstance(value, float):
                assert float(row[name]) == value, name
            else:
                assert row[name] == str(value), name


def test_xlsx_holds_every_request_in_one_sheet(tmp_path: Path) -> None:
    results = two_results()
    target = tmp_path / "requests.xlsx"
    export_requests(results, target)
    workbook = openpyxl.load_workbook(target, read_only=True)
    try:
        (sheet,) = workbook.worksheets
        rows = list(sheet.iter_rows(values_only=True))
    finally:
        workbook.close()
    assert list(rows[0]) == NAMES
    expected = expected_rows(results)
    assert len(rows) - 1 == len(expected)
    for row, wanted in zip(rows[1:], expected, strict=True):
        assert_same(list(row), wanted)


def test_no_results_writes_the_header_and_json_is_refused(tmp_path: Path) -> None:
    written = export_requests([], tmp_path / "none.parquet")
    assert (written.experiments, written.requests) == (0, 0)
    assert pq.read_table(tmp_path / "none.parquet").column_names == NAMES
    with pytest.raises(ExportError) as caught:
        export_requests(two_results(), tmp_path / "requests.json")
    assert str(caught.value) == (
        "the per-request export writes csv, parquet, xlsx, not json: each result.json already "
        "holds its requests"
    )
    assert not (tmp_path / "requests.json").exists()

"""CSV export, read back with the csv module and compared value by value."""

import csv
from datetime import datetime
from pathlib import Path

import pytest

from llem_persistence.exporters import SUMMARY_COLUMN_NAMES, SUMMARY_COLUMNS, export_csv
from llem_persistence.exporters.csv import CSV_VERSION_COLUMNS
from llem_schema import ExperimentResult
from llem_schema.testing import example_config, example_raw_result, example_result


def _results() -> list[ExperimentResult]:
    config = example_config(name='batch, "quoted"\nname', pytorch={"batch_size": 2})
    with_energy = example_result(
        [example_raw_result(config=config, seed=1)],
        config=config,
        measurement_warnings=["fewer than 30 prompts: use n >= 30"],
    )
    without_energy = example_result([example_raw_result(energy_j=None, seed=2)])
    return [
        with_energy,
        without_energy.model_copy(update={"experiment_id": "second_run_2026-11-22"}),
    ]


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_csv_reads_back_value_by_value(tmp_path: Path) -> None:
    results = _results()
    target = tmp_path / "results.csv"

    assert export_csv(results, target) == 2

    header, *rows = _read(target)
    assert header == list(SUMMARY_COLUMN_NAMES)
    assert len(rows) == 2
    for result, row in zip(results, rows, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["experiment_id"] == result.experiment_id
        assert cells["model"] == result.model
        assert datetime.fromisoformat(cells["start_time_utc"]) == result.start_time
        assert cells["start_time_utc"].endswith("+00:00")
        assert int(cells["output_tokens"]) == result.output_tokens
        assert int(cells["num_requests"]) == len(result.process_results[0].requests)
        assert float(cells["duration_s"]) == result.duration_s
        assert result.latency.e2e is not None
        assert float(cells["latency_e2e_p99_ms"]) == result.latency.e2e.p99_ms
        assert float(cells["output_tokens_per_s"]) == result.output_tokens_per_s
        assert cells["aggregation_complete"] == "true"
        assert cells["config_decoder_ignore_eos"] == "false"
    first, second = (dict(zip(header, row, strict=True)) for row in rows)
    assert first["config_name"] == 'batch, "quoted"\nname'
    assert first["config_batch_size"] == "2"
    assert first["num_warnings"] == "1"
    assert results[0].total_energy_j is not None
    assert float(first["total_energy_j"]) == results[0].total_energy_j
    assert float(first["efficiency_output_tokens_per_j"]) == pytest.approx(
        results[0].output_tokens / results[0].total_energy_j, rel=1e-15
    )
    # missing values are empty cells, never "None", "nan" or 0
    for name in ("total_energy_j", "efficiency_output_tokens_per_j", "config_name", "timeseries"):
        assert second[name] == "", name


def test_every_cell_round_trips_through_its_type(tmp_path: Path) -> None:
    results = _results()
    target = tmp_path / "results.csv"
    export_csv(results, target)
    _, *rows = _read(target)
    parse = {"int64": int, "float64": float, "string": str}
    for result, row in zip(results, rows, strict=True):
        for column, cell in zip(SUMMARY_COLUMNS, row, strict=True):
            value = column.get(result)
            if value is None:
                assert cell == ""
            elif column.kind == "bool":
                assert cell == ("true" if value else "false")
            elif column.kind == "timestamp":
                assert datetime.fromisoformat(cell) == value
            elif column.name in CSV_VERSION_COLUMNS:
                assert cell == f"v{value}", column.name
            else:
                assert parse[column.kind](cell) == value, column.name


def test_no_results_writes_the_header_only(tmp_path: Path) -> None:
    target = tmp_path / "empty.csv"
    assert export_csv([], target) == 0
    assert _read(target) == [list(SUMMARY_COLUMN_NAMES)]


def test_every_version_column_is_a_text_summary_column() -> None:
    kinds = {column.name: column.kind for column in SUMMARY_COLUMNS}
    assert {kinds[name] for name in CSV_VERSION_COLUMNS} == {"string"}

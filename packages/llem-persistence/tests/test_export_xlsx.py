"""xlsx export, read back with openpyxl (a reader other than the writer) and compared."""

import re
import zipfile
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from llem_persistence.exporters import (
    REQUEST_COLUMNS,
    SUMMARY_COLUMN_NAMES,
    SUMMARY_COLUMNS,
    ExportError,
    export_xlsx,
)
from llem_persistence.exporters import xlsx as xlsx_module
from llem_persistence.exporters.xlsx import (
    CHART_COLUMN,
    EXCEL_MAX_STRING,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
)
from llem_schema import ExperimentResult, MeasurementWarning
from llem_schema.testing import example_config, example_raw_result, example_result

FORMULA_LIKE = '=HYPERLINK("http://example.com")'  # a string: code "unclassified"
DRIFT = MeasurementWarning(
    code="thermal_drift",
    message="GPU 0 warmed by 12.0 °C during the window (more than 10 °C): warm up longer",
    figures={"gpu_index": 0, "rise_c": 12.0, "limit_c": 10.0},
)
SKEW = MeasurementWarning(
    code="window_skew",
    message="the processes' windows started 1.000 s and ended 1.000 s apart",
    figures={"start_skew_s": 1.0, "end_skew_s": 1.0, "limit_s": 0.25},
)


def _results() -> list[ExperimentResult]:
    config = example_config(n=12, num_processes=2, pytorch={"batch_size": 3})
    raws = [
        example_raw_result(process_index=i, num_processes=2, n_requests=6, seed=i, config=config)
        for i in range(2)
    ]
    first = example_result(raws, config=config, measurement_warnings=[DRIFT, FORMULA_LIKE])
    first = first.model_copy(
        update={"aggregation": first.aggregation.model_copy(update={"warnings": [SKEW]})}
    )
    second = example_result([example_raw_result(energy_j=None, seed=9, n_requests=5)])
    return [first, second.model_copy(update={"experiment_id": "no_energy_run"})]


def _rows(sheet: Worksheet) -> list[tuple[object, ...]]:
    return list(sheet.iter_rows(values_only=True))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ExperimentResult], Path]:
    results = _results()
    target = tmp_path_factory.mktemp("xlsx") / "results.xlsx"
    assert export_xlsx(results, target) == 2
    return results, target


def test_the_four_sheets_are_present_in_order(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    workbook = openpyxl.load_workbook(target)
    assert workbook.sheetnames == ["summary", "per-request", "config", "warnings"]


def test_summary_numbers_read_back(exported: tuple[list[ExperimentResult], Path]) -> None:
    results, target = exported
    sheet = openpyxl.load_workbook(target)["summary"]
    header, *rows = _rows(sheet)
    assert header == SUMMARY_COLUMN_NAMES
    assert len(rows) == 2
    for result, row in zip(results, rows, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["experiment_id"] == result.experiment_id
        assert cells["output_tokens"] == result.output_tokens
        assert cells["duration_s"] == pytest.approx(result.duration_s, rel=1e-15)
        assert result.latency.ttft is not None
        assert cells["latency_ttft_p95_ms"] == pytest.approx(result.latency.ttft.p95_ms, rel=1e-15)
        assert cells["aggregation_complete"] is True
        start = cells["start_time_utc"]
        assert start == result.start_time.astimezone(UTC).replace(tzinfo=None)
        for column in SUMMARY_COLUMNS:
            value = column.get(result)
            if value is None:
                assert cells[column.name] is None, column.name  # an empty cell
            elif column.kind == "float64":
                assert cells[column.name] == pytest.approx(value, rel=1e-15), column.name
            elif column.kind != "timestamp":
                assert cells[column.name] == value, column.name
    first = dict(zip(header, rows[0], strict=True))
    assert first["num_processes"] == 2
    assert first["config_batch_size"] == 3
    assert first["efficiency_output_tokens_per_j"] == pytest.approx(
        results[0].efficiency.output_tokens_per_j, rel=1e-15
    )


def test_per_request_rows_read_back(exported: tuple[list[ExperimentResult], Path]) -> None:
    results, target = exported
    header, *rows = _rows(openpyxl.load_workbook(target)["per-request"])
    assert header == tuple(c.name for c in REQUEST_COLUMNS)
    expected = [
        (result.experiment_id, process.process_index, record)
        for result in results
        for process in result.process_results
        for record in process.requests
    ]
    assert len(rows) == len(expected) == 12 + 5
    for row, (experiment_id, process_index, record) in zip(rows, expected, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["experiment_id"] == experiment_id
        assert cells["process_index"] == process_index
        assert cells["request_index"] == record.request_index
        assert cells["input_tokens"] == record.input_tokens
        assert cells["output_tokens"] == record.output_tokens
        assert cells["ttft_ms"] == pytest.approx(record.ttft_ms, rel=1e-15)
        assert cells["e2e_ms"] == pytest.approx(record.e2e_ms, rel=1e-15)
        if record.output_tokens >= 2:
            assert cells["itl_mean_ms"] == pytest.approx(float(np.mean(record.itl_ms)))
            expected_tpot = (record.e2e_ms or 0) - (record.ttft_ms or 0)
            assert cells["tpot_ms"] == pytest.approx(expected_tpot / (record.output_tokens - 1))
        else:
            assert cells["itl_mean_ms"] is None
            assert cells["tpot_ms"] is None
    assert {row[1] for row in rows[:12]} == {0, 1}


def test_config_sheet_holds_every_setting(exported: tuple[list[ExperimentResult], Path]) -> None:
    results, target = exported
    header, *rows = _rows(openpyxl.load_workbook(target)["config"])
    assert header == ("experiment_id", "setting", "value")
    first = {
        setting: value
        for experiment, setting, value in rows
        if experiment == results[0].experiment_id
    }
    assert first["n"] == 12
    assert first["pytorch.batch_size"] == 3
    assert first["decoder.mode"] == "greedy"
    assert first["decoder.ignore_eos"] is False
    assert first["baseline.duration_s"] == 5.0
    assert first["name"] is None  # unset: an empty cell
    assert "decoder" not in first  # nested settings are flattened
    assert {row[0] for row in rows} == {r.experiment_id for r in results}


def test_warnings_sheet_lists_each_warning_as_text(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    results, target = exported
    header, *rows = _rows(openpyxl.load_workbook(target)["warnings"])
    assert header == ("experiment_id", "source", "code", "warning")
    experiment_id = results[0].experiment_id
    assert rows == [
        (experiment_id, "measurement", "thermal_drift", DRIFT.message),
        (experiment_id, "measurement", "unclassified", FORMULA_LIKE),
        (experiment_id, "aggregation", "window_skew", SKEW.message),
    ]
    cell = openpyxl.load_workbook(target)["warnings"]["D3"]
    assert cell.data_type in ("s", "inlineStr")  # text, never a formula


def _data_range(name: str, rows: int) -> str:
    letter = get_column_letter(SUMMARY_COLUMN_NAMES.index(name) + 1)
    return f"{letter}2:{letter}{rows + 1}"


def test_efficiency_columns_have_colour_scales(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    sheet = openpyxl.load_workbook(target)["summary"]
    scales: dict[str, list[str]] = {}
    for formatting in sheet.conditional_formatting:
        for rule in formatting.rules:
            assert rule.type == "colorScale"
            assert rule.colorScale is not None
            scales[str(formatting.sqref)] = [str(c.rgb) for c in rule.colorScale.color]
    assert set(scales) == {_data_range(name, 2) for name in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER)}
    for name in HIGHER_IS_BETTER:
        assert scales[_data_range(name, 2)][-1].endswith("63BE7B")  # green at the maximum
    for name in LOWER_IS_BETTER:
        assert scales[_data_range(name, 2)][0].endswith("63BE7B")  # green at the minimum


def test_one_chart_plots_tokens_per_joule_per_experiment(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    with zipfile.ZipFile(target) as archive:
        charts = [name for name in archive.namelist() if name.startswith("xl/charts/chart")]
        assert charts == ["xl/charts/chart1.xml"]
        chart = archive.read(charts[0]).decode()
        sheet_rels = archive.read("xl/worksheets/_rels/sheet1.xml.rels").decode()
    letter = get_column_letter(SUMMARY_COLUMN_NAMES.index(CHART_COLUMN) + 1)
    references = re.findall(r"<c:f>([^<]+)</c:f>", chart)
    assert f"summary!${letter}$2:${letter}$3" in references
    assert "summary!$A$2:$A$3" in references
    assert "drawing" in sheet_rels  # the chart sits on the summary sheet


def test_no_results_writes_headers_only_and_no_chart(tmp_path: Path) -> None:
    target = tmp_path / "empty.xlsx"

    def nothing() -> Iterator[ExperimentResult]:
        yield from ()

    assert export_xlsx(nothing(), target) == 0
    workbook = openpyxl.load_workbook(target)
    assert workbook.sheetnames == ["summary", "per-request", "config", "warnings"]
    assert _rows(workbook["summary"]) == [SUMMARY_COLUMN_NAMES]
    assert _rows(workbook["warnings"]) == [("experiment_id", "source", "code", "warning")]
    with zipfile.ZipFile(target) as archive:
        assert not [n for n in archive.namelist() if n.startswith("xl/charts/")]


def test_a_sheet_over_excels_row_limit_is_refused_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx_module, "EXCEL_MAX_ROWS", 10)  # 9 data rows fit
    target = tmp_path / "big.xlsx"
    with pytest.raises(ExportError) as caught:
        export_xlsx(_results(), target)  # 17 request rows
    assert str(caught.value) == (
        "the 'per-request' sheet would exceed Excel's 10 rows: export fewer experiments to "
        "xlsx, or use export_parquet / export_csv"
    )
    assert list(tmp_path.iterdir()) == []


def test_text_longer_than_an_excel_cell_is_cut_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_warning = "x" * 40_000
    target = tmp_path / "long.xlsx"
    export_xlsx([example_result(measurement_warnings=[long_warning])], target)
    sheet = openpyxl.load_workbook(target)["warnings"]
    assert sheet["C2"].value == "unclassified"
    cell = sheet["D2"].value
    assert isinstance(cell, str)
    assert len(cell) == EXCEL_MAX_STRING
    assert cell.endswith("\u2026")
    assert "a cell of 40000 characters was cut to Excel's limit of 32767" in caplog.text

"""xlsx export, read back with openpyxl (a reader other than the writer) and compared."""

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from xml.etree import ElementTree

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
    COMPARISON_BETTER,
    COMPARISON_COLUMN_NAMES,
    COMPARISON_METRICS,
    EXCEL_MAX_STRING,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    RATIO_SUFFIX,
    ratio_to_first,
)
from llem_schema import ExperimentResult, MeasurementWarning
from llem_schema.tabular.summary import SUMMARY_BY_NAME
from llem_schema.testing import example_config, example_raw_result, example_result

SHEET_NAMES = ["summary", "comparison", "per-request", "config", "warnings"]
GREEN = "63BE7B"

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


def test_the_five_sheets_are_present_in_order(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    workbook = openpyxl.load_workbook(target)
    assert workbook.sheetnames == SHEET_NAMES


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


def _colour_scales(sheet: Worksheet) -> dict[str, list[str]]:
    """Each conditionally formatted range of ``sheet`` and its scale's colours, low to high."""
    scales: dict[str, list[str]] = {}
    for formatting in sheet.conditional_formatting:
        for rule in formatting.rules:
            assert rule.type == "colorScale"
            assert rule.colorScale is not None
            scales[str(formatting.sqref)] = [str(c.rgb)[-6:] for c in rule.colorScale.color]
    return scales


def test_efficiency_columns_have_colour_scales(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    scales = _colour_scales(openpyxl.load_workbook(target)["summary"])
    assert set(scales) == {_data_range(name, 2) for name in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER)}
    for name in HIGHER_IS_BETTER:
        assert scales[_data_range(name, 2)][-1] == GREEN  # green at the maximum
    for name in LOWER_IS_BETTER:
        assert scales[_data_range(name, 2)][0] == GREEN  # green at the minimum


# Charts: openpyxl does not load them, so they are read from the file's XML.

_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


@dataclass(frozen=True)
class _Series:
    name: str
    categories: str  # the cell range
    values: str
    category_cache: list[str | None]  # the values cached in the chart
    value_cache: list[float | None]


@dataclass(frozen=True)
class _Chart:
    title: str
    x_title: str
    y_title: str
    y_min: float | None
    series: list[_Series]


def _find(element: ElementTree.Element, path: str) -> ElementTree.Element:
    found = element.find(path)
    assert found is not None, path
    return found


def _text(element: ElementTree.Element) -> str:
    return "".join(t.text or "" for t in element.iter(f"{_A}t"))


def _cached(reference: ElementTree.Element) -> list[str | None]:
    cache = reference.find(f"{_C}strCache")
    if cache is None:
        cache = reference.find(f"{_C}numCache")
    if cache is None:
        return []  # nothing cached: a reader must read the cells
    points: list[str | None] = [None] * int(_find(cache, f"{_C}ptCount").get("val", "0"))
    for point in cache.iter(f"{_C}pt"):
        points[int(point.get("idx", "-1"))] = _find(point, f"{_C}v").text
    return points


def _series(element: ElementTree.Element) -> _Series:
    categories = _find(element, f"{_C}cat")[0]  # strRef for text, numRef for numbers
    values = _find(element, f"{_C}val/{_C}numRef")
    return _Series(
        name=_find(element, f"{_C}tx/{_C}v").text or "",
        categories=_find(categories, f"{_C}f").text or "",
        values=_find(values, f"{_C}f").text or "",
        category_cache=_cached(categories),
        value_cache=[None if v is None else float(v) for v in _cached(values)],
    )


def _chart(xml: bytes) -> _Chart:
    chart = _find(ElementTree.fromstring(xml), f"{_C}chart")
    plot = _find(chart, f"{_C}plotArea")
    minimum = _find(plot, f"{_C}valAx/{_C}scaling").find(f"{_C}min")
    return _Chart(
        title=_text(_find(chart, f"{_C}title")),
        x_title=_text(_find(plot, f"{_C}catAx/{_C}title")),
        y_title=_text(_find(plot, f"{_C}valAx/{_C}title")),
        y_min=None if minimum is None else float(minimum.get("val", "nan")),
        series=[_series(element) for element in plot.iter(f"{_C}ser")],
    )


def _sheet_charts(target: Path, sheet: str) -> list[_Chart]:
    """The charts on ``sheet``, in the order they were inserted: sheet -> drawing -> charts."""
    number = SHEET_NAMES.index(sheet) + 1  # xl/worksheets/sheet<n>.xml, in sheet order
    with zipfile.ZipFile(target) as archive:
        rels = f"xl/worksheets/_rels/sheet{number}.xml.rels"
        if rels not in archive.namelist():
            return []
        charts: list[_Chart] = []
        sheet_rels = archive.read(rels).decode()
        for drawing in re.findall(r'Target="\.\./drawings/(drawing\d+\.xml)"', sheet_rels):
            drawing_rels = archive.read(f"xl/drawings/_rels/{drawing}.rels").decode()
            for name in re.findall(r'Target="\.\./charts/(chart\d+\.xml)"', drawing_rels):
                charts.append(_chart(archive.read(f"xl/charts/{name}")))
    return charts


def _chart_files(target: Path) -> list[str]:
    with zipfile.ZipFile(target) as archive:
        return sorted(n for n in archive.namelist() if n.startswith("xl/charts/"))


def test_the_summary_sheet_charts_tokens_per_joule_per_experiment(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    (chart,) = _sheet_charts(target, "summary")
    letter = get_column_letter(SUMMARY_COLUMN_NAMES.index(CHART_COLUMN) + 1)
    assert chart.title == "Output tokens per joule (raw energy), per experiment"
    assert chart.y_title == "output tokens / J"
    [series] = chart.series
    assert series.categories == "summary!$A$2:$A$3"
    assert series.values == f"summary!${letter}$2:${letter}$3"
    assert len(_chart_files(target)) == 1 + 4  # the summary's and the comparison's


def test_the_comparison_sheet_holds_key_metrics_and_ratios_to_the_first(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    results, target = exported
    sheet = openpyxl.load_workbook(target)["comparison"]
    header, *rows = _rows(sheet)
    assert header == COMPARISON_COLUMN_NAMES
    assert header[:4] == (
        "experiment_id",
        "output_tokens_per_s",
        "total_energy_j",
        "efficiency_energy_per_output_token_j",
    )
    assert header[11] == "output_tokens_per_s_vs_first"
    assert len(header) == 1 + 2 * 10
    first, second = results
    one, two = (dict(zip(header, row, strict=True)) for row in rows)
    assert one["experiment_id"] == first.experiment_id
    assert two["experiment_id"] == "no_energy_run"
    # Every key metric is the summary column's value; each ratio is over the first's.
    for result, cells in ((first, one), (second, two)):
        for name in COMPARISON_METRICS:
            value = SUMMARY_BY_NAME[name].get(result)
            baseline = SUMMARY_BY_NAME[name].get(first)
            assert cells[name] == (None if value is None else pytest.approx(value, rel=1e-15))
            ratio = cells[name + RATIO_SUFFIX]
            if value is None or baseline is None:
                assert ratio is None, name
            else:
                assert isinstance(value, float)
                assert isinstance(baseline, float)
                assert ratio == pytest.approx(value / baseline, rel=1e-15), name
    # The first is the baseline: all its ratios are 1.
    assert {one[name + RATIO_SUFFIX] for name in COMPARISON_METRICS} == {1.0}
    assert one["efficiency_output_tokens_per_j"] == pytest.approx(
        first.efficiency.output_tokens_per_j, rel=1e-15
    )
    assert first.latency.ttft is not None
    assert one["latency_ttft_p99_ms"] == pytest.approx(first.latency.ttft.p99_ms, rel=1e-15)
    assert two["output_tokens_per_s_vs_first"] == pytest.approx(
        second.output_tokens_per_s / first.output_tokens_per_s, rel=1e-15
    )
    assert two["output_tokens_per_s_vs_first"] != pytest.approx(1.0)
    assert first.latency.e2e is not None
    assert second.latency.e2e is not None
    assert two["latency_e2e_p99_ms_vs_first"] == pytest.approx(
        second.latency.e2e.p99_ms / first.latency.e2e.p99_ms, rel=1e-15
    )
    # No energy measured: empty metrics and ratios, not zeros.
    for name in (
        "total_energy_j",
        "efficiency_energy_per_output_token_j",
        "efficiency_output_tokens_per_j",
    ):
        assert two[name] is None
        assert two[name + RATIO_SUFFIX] is None
    assert sheet["L3"].number_format == '0.00"x"'  # a ratio shows as 0.87x


def test_comparison_colour_scales_are_green_at_the_better_end(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    _, target = exported
    scales = _colour_scales(openpyxl.load_workbook(target)["comparison"])
    # B output tokens/s, E tokens per J; L and O their ratios.
    higher = "BELO"
    # D J per output token, F-K the latencies; N, P-U their ratios.
    lower = "DFGHIJKNPQRSTU"
    assert set(scales) == {f"{letter}2:{letter}3" for letter in higher + lower}
    assert "C2:C3" not in scales  # energy grows with the workload: not coloured
    for letter in higher:
        assert scales[f"{letter}2:{letter}3"] == ["F8696B", "FFEB84", GREEN]
    for letter in lower:
        assert scales[f"{letter}2:{letter}3"] == [GREEN, "FFEB84", "F8696B"]
    assert len(COMPARISON_BETTER) * 2 == len(higher + lower)


def test_the_comparison_sheet_charts_throughput_energy_and_latency(
    exported: tuple[list[ExperimentResult], Path],
) -> None:
    results, target = exported
    charts = _sheet_charts(target, "comparison")
    assert [(chart.title, chart.y_title) for chart in charts] == [
        ("Output tokens per second, per experiment", "output tokens / s"),
        ("Energy per output token (raw energy), per experiment", "J / output token"),
        ("Time to first token, p50 and p99, per experiment", "TTFT, ms"),
        ("End-to-end latency, p50 and p99, per experiment", "E2E latency, ms"),
    ]
    assert [[(s.name, s.values) for s in chart.series] for chart in charts] == [
        [("output tokens/s", "comparison!$B$2:$B$3")],
        [("J per output token", "comparison!$D$2:$D$3")],
        [("TTFT p50", "comparison!$F$2:$F$3"), ("TTFT p99", "comparison!$G$2:$G$3")],
        [("E2E p50", "comparison!$J$2:$J$3"), ("E2E p99", "comparison!$K$2:$K$3")],
    ]
    ids = [result.experiment_id for result in results]
    for chart in charts:
        assert chart.x_title == "experiment_id"
        assert chart.y_min == 0.0  # bars from zero
        for series in chart.series:
            assert series.categories == "comparison!$A$2:$A$3"
            assert series.category_cache == ids
    first, second = results
    assert charts[0].series[0].value_cache == pytest.approx(
        [first.output_tokens_per_s, second.output_tokens_per_s], rel=1e-15
    )
    energy = first.efficiency.energy_per_output_token_j
    assert energy is not None
    assert charts[1].series[0].value_cache == [pytest.approx(energy, rel=1e-15), None]  # a gap
    assert first.latency.ttft is not None
    assert second.latency.ttft is not None
    assert charts[2].series[1].value_cache == pytest.approx(
        [first.latency.ttft.p99_ms, second.latency.ttft.p99_ms], rel=1e-15
    )
    assert first.latency.e2e is not None
    assert second.latency.e2e is not None
    assert charts[3].series[0].value_cache == pytest.approx(
        [first.latency.e2e.median_ms, second.latency.e2e.median_ms], rel=1e-15
    )


def test_charts_show_the_first_experiments_of_many_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx_module, "CHART_MAX_EXPERIMENTS", 2)
    results = [
        example_result([example_raw_result(seed=i)]).model_copy(
            update={"experiment_id": f"run_{i}"}
        )
        for i in range(3)
    ]
    target = tmp_path / "many.xlsx"
    assert export_xlsx(results, target) == 3
    assert len(_rows(openpyxl.load_workbook(target)["comparison"])) == 1 + 3  # the table: all
    charts = _sheet_charts(target, "comparison")
    assert len(charts) == 4
    assert charts[0].title == "Output tokens per second, per experiment (the first 2 of 3)"
    for chart in charts:
        assert chart.title.endswith(" (the first 2 of 3)")
        for series in chart.series:
            assert series.categories == "comparison!$A$2:$A$3"
            assert series.category_cache == ["run_0", "run_1"]
            assert len(series.value_cache) == 2
    [summary] = _sheet_charts(target, "summary")
    assert summary.series[0].categories == "summary!$A$2:$A$4"  # the summary chart: all


@pytest.mark.parametrize(
    ("value", "first", "expected"),
    [
        (3.0, 4.0, 0.75),
        (0.0, 4.0, 0.0),
        (None, 4.0, None),
        (3.0, None, None),
        (3.0, 0.0, None),  # no ratio to zero
    ],
)
def test_ratio_to_first_is_that_of_results_compare(
    value: float | None, first: float | None, expected: float | None
) -> None:
    assert ratio_to_first(value, first) == expected


def test_no_results_writes_headers_only_and_no_chart(tmp_path: Path) -> None:
    target = tmp_path / "empty.xlsx"

    def nothing() -> Iterator[ExperimentResult]:
        yield from ()

    assert export_xlsx(nothing(), target) == 0
    workbook = openpyxl.load_workbook(target)
    assert workbook.sheetnames == SHEET_NAMES
    assert _rows(workbook["summary"]) == [SUMMARY_COLUMN_NAMES]
    assert _rows(workbook["comparison"]) == [COMPARISON_COLUMN_NAMES]
    assert _rows(workbook["warnings"]) == [("experiment_id", "source", "code", "warning")]
    assert _colour_scales(workbook["comparison"]) == {}
    assert _chart_files(target) == []


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

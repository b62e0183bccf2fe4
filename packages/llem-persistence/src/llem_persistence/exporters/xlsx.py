"""Excel export: a workbook for analysts, written row by row in constant memory.

Sheets, in order:

- ``summary``: one row per experiment, the columns of :data:`SUMMARY_COLUMNS`; a 3-colour
  scale on the efficiency columns (green is better: more tokens per joule, fewer joules per
  token); below the table, a column chart of output tokens per joule per experiment.
- ``comparison``: one row per experiment: ``experiment_id``, the key metrics of
  :data:`COMPARISON_METRICS` (summary columns: throughput, energy, efficiency, TTFT, ITL and
  E2E p50 and p99), then each metric's ratio to the first experiment's, ``<metric>_vs_first``
  (as ``llem results compare`` gives it: empty where either value is missing or the first's
  is zero). A 3-colour scale on each metric of :data:`COMPARISON_BETTER` and on its ratio,
  green the better end; below the table, four column charts per experiment: output tokens
  per second, joules per output token, TTFT p50 and p99, E2E p50 and p99 (the first
  :data:`CHART_MAX_EXPERIMENTS` experiments; the table has them all).
- ``per-request``: one row per request of every experiment, :data:`REQUEST_COLUMNS`.
- ``config``: the effective config of every experiment, one setting per row
  (``experiment_id``, ``setting`` as a dotted key, ``value``), so experiments with different
  settings fit one sheet.
- ``warnings``: ``experiment_id``, ``source`` (``measurement`` or ``aggregation``) and the
  warning text.

Numbers are numeric cells, booleans boolean cells, timestamps date cells in UTC; a missing
value is an empty cell. Text is never interpreted as a formula. No results gives the five
sheets with their headers and no chart.

The comparison streams like every other sheet: each row is written as its experiment goes
by. All it keeps are the first experiment's key metrics (what the ratios divide by) and the
ids and key metrics of the charted experiments (the charts' cached values).
"""

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Final, Literal, TypeVar

from llem_persistence.exporters._target import ResultSource, export_file
from llem_persistence.exporters._xlsxwriter import (
    Chart,
    Format,
    Workbook,
    Worksheet,
    XlsxWriterError,
    open_workbook,
)
from llem_persistence.exporters.errors import ExportError
from llem_schema import ExperimentResult
from llem_schema.tabular.columns import Cell, Column, row_values
from llem_schema.tabular.config import flatten_config
from llem_schema.tabular.requests import REQUEST_COLUMNS, each_request
from llem_schema.tabular.summary import SUMMARY_BY_NAME, SUMMARY_COLUMN_NAMES, SUMMARY_COLUMNS

__all__ = [
    "CHART_COLUMN",
    "CHART_MAX_EXPERIMENTS",
    "COMPARISON_BETTER",
    "COMPARISON_COLUMN_NAMES",
    "COMPARISON_METRICS",
    "EXCEL_MAX_ROWS",
    "EXCEL_MAX_STRING",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "RATIO_SUFFIX",
    "SHEETS",
    "export_xlsx",
    "ratio_to_first",
]

logger = logging.getLogger(__name__)

SHEETS: Final = ("summary", "comparison", "per-request", "config", "warnings")
"""The worksheet names, in order."""

HIGHER_IS_BETTER: Final = (
    "efficiency_output_tokens_per_j",
    "efficiency_output_tokens_per_j_adjusted",
)
"""Summary columns with a red-to-green colour scale (more is better)."""

LOWER_IS_BETTER: Final = (
    "efficiency_energy_per_output_token_j",
    "efficiency_energy_per_output_token_adjusted_j",
)
"""Summary columns with a green-to-red colour scale (less is better)."""

CHART_COLUMN: Final = "efficiency_output_tokens_per_j"
"""The summary column charted per experiment."""

COMPARISON_METRICS: Final = (
    "output_tokens_per_s",
    "total_energy_j",
    "efficiency_energy_per_output_token_j",
    "efficiency_output_tokens_per_j",
    "latency_ttft_median_ms",
    "latency_ttft_p99_ms",
    "latency_itl_median_ms",
    "latency_itl_p99_ms",
    "latency_e2e_median_ms",
    "latency_e2e_p99_ms",
)
"""The summary columns of the ``comparison`` sheet, each also as a ratio to the first
experiment's (medians are the p50)."""

COMPARISON_BETTER: Final[dict[str, Literal["higher", "lower"]]] = {
    "output_tokens_per_s": "higher",
    "efficiency_energy_per_output_token_j": "lower",
    "efficiency_output_tokens_per_j": "higher",
    "latency_ttft_median_ms": "lower",
    "latency_ttft_p99_ms": "lower",
    "latency_itl_median_ms": "lower",
    "latency_itl_p99_ms": "lower",
    "latency_e2e_median_ms": "lower",
    "latency_e2e_p99_ms": "lower",
}
"""The comparison metrics given a colour scale, with the end that is better. Not
``total_energy_j``: an experiment's energy grows with its workload, so less is not better."""

RATIO_SUFFIX: Final = "_vs_first"
"""Ends the name of a ratio column of the ``comparison`` sheet, as in ``llem results compare``."""

COMPARISON_COLUMN_NAMES: Final[tuple[str, ...]] = (
    "experiment_id",
    *COMPARISON_METRICS,
    *(name + RATIO_SUFFIX for name in COMPARISON_METRICS),
)
"""The header of the ``comparison`` sheet."""

CHART_MAX_EXPERIMENTS: Final = 30
"""Experiments a comparison chart shows at most: the first ones, in export order."""

EXCEL_MAX_ROWS: Final = 1_048_576
"""Rows in one Excel worksheet, header included."""

EXCEL_MAX_STRING: Final = 32_767
"""Characters in one Excel cell."""

_RED: Final = "#F8696B"
_YELLOW: Final = "#FFEB84"
_GREEN: Final = "#63BE7B"

_RATIO_FORMAT: Final = '0.00"x"'

_CHARTS: Final[tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]] = (
    (
        "Output tokens per second, per experiment",
        "output tokens / s",
        (("output_tokens_per_s", "output tokens/s"),),
    ),
    (
        "Energy per output token (raw energy), per experiment",
        "J / output token",
        (("efficiency_energy_per_output_token_j", "J per output token"),),
    ),
    (
        "Time to first token, p50 and p99, per experiment",
        "TTFT, ms",
        (("latency_ttft_median_ms", "TTFT p50"), ("latency_ttft_p99_ms", "TTFT p99")),
    ),
    (
        "End-to-end latency, p50 and p99, per experiment",
        "E2E latency, ms",
        (("latency_e2e_median_ms", "E2E p50"), ("latency_e2e_p99_ms", "E2E p99")),
    ),
)
"""Each comparison chart: title, y-axis title with the unit, and its (column, series) pairs.
TTFT and E2E have a chart each: on one axis, TTFT bars would be too short to read."""

_XLSXWRITER_CHART_PX: Final = (480, 288)  # a chart's default size, scaled to the one below
_CHART_PX: Final = (960, 480)  # room for 30 experiment ids along the x axis
_CHART_GAP_PX: Final = 20

RowT = TypeVar("RowT")


class _Sheet:
    """One worksheet written strictly row after row, as constant-memory mode requires."""

    def __init__(
        self,
        book: "_Cells",
        name: str,
        headers: Sequence[str],
        formats: Mapping[int, Format] | None = None,
    ) -> None:
        self.name = name
        self.worksheet: Worksheet = book.workbook.add_worksheet(name)
        self._book = book
        self._formats = formats or {}  # a number format by column
        self.rows = 0  # data rows written below the header
        for col, header in enumerate(headers):
            self.worksheet.write_string(0, col, header, book.header)
            self.worksheet.set_column(col, col, max(10, min(len(header) + 2, 48)))
        self.worksheet.freeze_panes(1, 0)
        self.width = len(headers)

    def append(self, values: Sequence[Cell]) -> None:
        row = self.rows + 1
        if row >= EXCEL_MAX_ROWS:
            raise ExportError(
                f"the {self.name!r} sheet would exceed Excel's {EXCEL_MAX_ROWS:,} rows: "
                "export fewer experiments to xlsx, or use export_parquet / export_csv"
            )
        for col, value in enumerate(values):
            self._book.write_cell(self.worksheet, row, col, value, self._formats.get(col))
        self.rows = row

    def append_columns(self, columns: Sequence[Column[RowT]], row: RowT) -> None:
        self.append(row_values(columns, row))

    def finish(self) -> None:
        if self.rows:
            self.worksheet.autofilter(0, 0, self.rows, self.width - 1)


class _Cells:
    """A workbook's cell formats, and how each kind of value is written into a cell."""

    def __init__(self, workbook: Workbook) -> None:
        self.workbook = workbook
        self.header: Format = workbook.add_format({"bold": True, "bottom": 1})
        self.datetime: Format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"})

    def write_cell(
        self, sheet: Worksheet, row: int, col: int, value: Cell, number: Format | None = None
    ) -> None:
        """Write ``value``; ``number`` is the format of a numeric value."""
        if value is None:
            return
        if isinstance(value, bool):
            sheet.write_boolean(row, col, value)
        elif isinstance(value, int | float):
            sheet.write_number(row, col, value, number)
        elif isinstance(value, datetime):
            naive_utc = value.astimezone(UTC).replace(tzinfo=None)
            sheet.write_datetime(row, col, naive_utc, self.datetime)
        else:
            if len(value) > EXCEL_MAX_STRING:
                logger.warning(
                    "xlsx export: a cell of %d characters was cut to Excel's limit of %d",
                    len(value),
                    EXCEL_MAX_STRING,
                )
                value = value[: EXCEL_MAX_STRING - 1] + "\u2026"
            sheet.write_string(row, col, value)


class _Comparison:
    """The ``comparison`` sheet, a row written per experiment as it streams by. Kept: the
    first experiment's key metrics, to divide the others' by, and the id and key metrics of
    each charted experiment, for the charts' cached values (what a reader that does not
    recalculate, such as PowerPoint, draws)."""

    def __init__(self, book: _Cells) -> None:
        ratio = book.workbook.add_format({"num_format": _RATIO_FORMAT})
        first_ratio = 1 + len(COMPARISON_METRICS)
        formats = {first_ratio + i: ratio for i in range(len(COMPARISON_METRICS))}
        self.sheet = _Sheet(book, "comparison", COMPARISON_COLUMN_NAMES, formats)
        self.sheet.worksheet.set_column(0, 0, 40)
        self.sheet.worksheet.freeze_panes(1, 1)
        self._workbook = book.workbook
        self._first: list[float | None] | None = None
        self._charted: list[tuple[str, list[float | None]]] = []

    def add(self, result: ExperimentResult) -> None:
        metrics = [_metric(result, name) for name in COMPARISON_METRICS]
        if self._first is None:
            self._first = metrics
        ratios = [ratio_to_first(v, f) for v, f in zip(metrics, self._first, strict=True)]
        self.sheet.append((result.experiment_id, *metrics, *ratios))
        if len(self._charted) < CHART_MAX_EXPERIMENTS:
            self._charted.append((result.experiment_id, metrics))

    def finish(self) -> None:
        self.sheet.finish()
        if not self.sheet.rows:
            return
        for name, better in COMPARISON_BETTER.items():
            _colour_scale(self.sheet, COMPARISON_COLUMN_NAMES.index(name), better)
            _colour_scale(self.sheet, COMPARISON_COLUMN_NAMES.index(name + RATIO_SUFFIX), better)
        for index, (title, y_title, series) in enumerate(_CHARTS):
            self._chart(index, title, y_title, series)

    def _chart(
        self, index: int, title: str, y_title: str, series: Sequence[tuple[str, str]]
    ) -> None:
        rows = self.sheet.rows
        shown = len(self._charted)
        chart = self._workbook.add_chart({"type": "column"})
        for name, label in series:
            col = COMPARISON_COLUMN_NAMES.index(name)
            metric = COMPARISON_METRICS.index(name)
            chart.add_series(
                {
                    "name": label,
                    "categories": [self.sheet.name, 1, 0, shown, 0],
                    "values": [self.sheet.name, 1, col, shown, col],
                    "categories_data": [experiment_id for experiment_id, _ in self._charted],
                    "values_data": [metrics[metric] for _, metrics in self._charted],
                }
            )
        capped = "" if shown == rows else f" (the first {shown} of {rows})"
        _label(chart, title + capped, y_title)
        chart.set_legend({"none": True} if len(series) == 1 else {"position": "bottom"})
        # One below the other, below the table.
        self.sheet.worksheet.insert_chart(
            rows + 2,
            0,
            chart,
            {
                "y_offset": index * (_CHART_PX[1] + _CHART_GAP_PX),
                "x_scale": _CHART_PX[0] / _XLSXWRITER_CHART_PX[0],
                "y_scale": _CHART_PX[1] / _XLSXWRITER_CHART_PX[1],
            },
        )


class _Book(_Cells):
    """The five sheets of the export, filled one experiment at a time."""

    def __init__(self, workbook: Workbook) -> None:
        super().__init__(workbook)
        self.summary = _Sheet(self, "summary", SUMMARY_COLUMN_NAMES)
        self.comparison = _Comparison(self)
        self.requests = _Sheet(self, "per-request", [c.name for c in REQUEST_COLUMNS])
        self.config = _Sheet(self, "config", ("experiment_id", "setting", "value"))
        self.warnings = _Sheet(self, "warnings", ("experiment_id", "source", "code", "warning"))
        self.summary.worksheet.set_column(0, 0, 40)
        self.config.worksheet.set_column(1, 1, 36)
        self.config.worksheet.set_column(2, 2, 24)
        self.warnings.worksheet.set_column(0, 0, 40)
        self.warnings.worksheet.set_column(2, 2, 24)
        self.warnings.worksheet.set_column(3, 3, 120)

    def add(self, result: ExperimentResult) -> None:
        self.summary.append_columns(SUMMARY_COLUMNS, result)
        self.comparison.add(result)
        for request in each_request(result):
            self.requests.append_columns(REQUEST_COLUMNS, request)
        experiment_id = result.experiment_id
        for setting, value in flatten_config(result.effective_config):
            self.config.append((experiment_id, setting, value))
        for source, warnings in (
            ("measurement", result.measurement_warnings),
            ("aggregation", result.aggregation.warnings),
        ):
            for warning in warnings:
                self.warnings.append((experiment_id, source, warning.code, warning.message))

    def finish(self) -> None:
        for sheet in (self.summary, self.requests, self.config, self.warnings):
            sheet.finish()
        if self.summary.rows:
            for name in HIGHER_IS_BETTER:
                _colour_scale(self.summary, SUMMARY_COLUMN_NAMES.index(name), "higher")
            for name in LOWER_IS_BETTER:
                _colour_scale(self.summary, SUMMARY_COLUMN_NAMES.index(name), "lower")
            self._chart()
        self.comparison.finish()

    def _chart(self) -> None:
        last = self.summary.rows
        col = SUMMARY_COLUMN_NAMES.index(CHART_COLUMN)
        chart = self.workbook.add_chart({"type": "column"})
        chart.add_series(
            {
                "name": "output tokens per J",
                "categories": ["summary", 1, 0, last, 0],
                "values": ["summary", 1, col, last, col],
            }
        )
        _label(chart, "Output tokens per joule (raw energy), per experiment", "output tokens / J")
        chart.set_legend({"none": True})
        self.summary.worksheet.insert_chart(last + 2, 0, chart, {"x_scale": 2.0, "y_scale": 1.5})


def ratio_to_first(value: float | None, first: float | None) -> float | None:
    """``value`` over the first experiment's ``first``, as ``llem results compare`` gives
    it: ``None`` where either is missing or ``first`` is zero."""
    return None if value is None or not first else value / first


def _metric(result: ExperimentResult, name: str) -> float | None:
    value = SUMMARY_BY_NAME[name].get(result)
    return value if isinstance(value, float) else None


def _colour_scale(sheet: _Sheet, col: int, better: Literal["higher", "lower"]) -> None:
    """A red-yellow-green scale on the data rows of column ``col``, green at the better end."""
    low, high = (_RED, _GREEN) if better == "higher" else (_GREEN, _RED)
    sheet.worksheet.conditional_format(
        1,
        col,
        sheet.rows,
        col,
        {"type": "3_color_scale", "min_color": low, "mid_color": _YELLOW, "max_color": high},
    )


def _label(chart: Chart, title: str, y_title: str) -> None:
    """Title ``chart``: experiments along the x axis, ``y_title`` (with the unit) up from 0,
    so that bar heights compare."""
    chart.set_title({"name": title})
    chart.set_x_axis({"name": "experiment_id", "num_font": {"rotation": -45}})
    chart.set_y_axis({"name": y_title, "min": 0})


def export_xlsx(results: Iterable[ExperimentResult], path: str | PathLike[str]) -> int:
    """Write ``results`` to ``path`` as an Excel workbook and return how many were written.

    Streams with xlsxwriter's constant-memory mode: each experiment's rows are written to
    every sheet, then the next experiment's. xlsxwriter's scratch files go to a private
    ``llem-xlsx-*`` directory in the system temporary directory, removed afterwards. Written
    atomically like every export. Raises :class:`ExportError` for a bad path or input, or
    when a sheet would exceed Excel's row limit.
    """
    source = ResultSource(results)
    with export_file(path, "xlsx", source) as temporary, _workbook(temporary, path) as workbook:
        book = _Book(workbook)
        for result in source:
            book.add(result)
        book.finish()
    return source.count


def write_sheet(
    target: Path,
    sheet: str,
    names: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    *,
    path: str | PathLike[str],
) -> int:
    """A workbook at ``target`` (the temporary file of an export to ``path``) of one sheet:
    the header ``names``, then ``rows``, each cell written as the export writes its own (the
    same row limit and the same formats). Returns how many rows were written."""
    with _workbook(target, path) as workbook:
        page = _Sheet(_Cells(workbook), sheet, names)
        for row in rows:
            page.append(row)
        page.finish()
    return page.rows


@contextlib.contextmanager
def _workbook(target: Path, path: str | PathLike[str]) -> Iterator[Workbook]:
    """A constant-memory workbook writing to ``target``, its scratch files in a private
    ``llem-xlsx-*`` directory; closed at the end (an error names ``path``), discarded on a
    failure."""
    with tempfile.TemporaryDirectory(prefix="llem-xlsx-") as scratch:
        workbook = open_workbook(target, scratch_dir=Path(scratch))
        try:
            yield workbook
        except BaseException:
            # Close the scratch files; the half-written workbook is discarded with the temporary.
            with contextlib.suppress(Exception):
                workbook.close()
            raise
        try:
            workbook.close()
        except XlsxWriterError as exc:
            raise ExportError(f"cannot write xlsx export {path}: {exc}") from exc

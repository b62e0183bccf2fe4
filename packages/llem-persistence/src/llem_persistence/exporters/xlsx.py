"""Excel export: a workbook for analysts, written row by row in constant memory.

Sheets, in order:

- ``summary``: one row per experiment, the columns of :data:`SUMMARY_COLUMNS`; a 3-colour
  scale on the efficiency columns (green is better: more tokens per joule, fewer joules per
  token); below the table, a column chart of output tokens per joule per experiment.
- ``per-request``: one row per request of every experiment, :data:`REQUEST_COLUMNS`.
- ``config``: the effective config of every experiment, one setting per row
  (``experiment_id``, ``setting`` as a dotted key, ``value``), so experiments with different
  settings fit one sheet.
- ``warnings``: ``experiment_id``, ``source`` (``measurement`` or ``aggregation``) and the
  warning text.

Numbers are numeric cells, booleans boolean cells, timestamps date cells in UTC; a missing
value is an empty cell. Text is never interpreted as a formula. No results gives the four
sheets with their headers and no chart.
"""

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Final, TypeVar

from llem_persistence.exporters._target import ResultSource, export_file
from llem_persistence.exporters._xlsxwriter import (
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
from llem_schema.tabular.summary import SUMMARY_COLUMN_NAMES, SUMMARY_COLUMNS

__all__ = [
    "CHART_COLUMN",
    "EXCEL_MAX_ROWS",
    "EXCEL_MAX_STRING",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "SHEETS",
    "export_xlsx",
]

logger = logging.getLogger(__name__)

SHEETS: Final = ("summary", "per-request", "config", "warnings")
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

EXCEL_MAX_ROWS: Final = 1_048_576
"""Rows in one Excel worksheet, header included."""

EXCEL_MAX_STRING: Final = 32_767
"""Characters in one Excel cell."""

_RED: Final = "#F8696B"
_YELLOW: Final = "#FFEB84"
_GREEN: Final = "#63BE7B"

RowT = TypeVar("RowT")


class _Sheet:
    """One worksheet written strictly row after row, as constant-memory mode requires."""

    def __init__(self, book: "_Cells", name: str, headers: Sequence[str]) -> None:
        self.name = name
        self.worksheet: Worksheet = book.workbook.add_worksheet(name)
        self._book = book
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
            self._book.write_cell(self.worksheet, row, col, value)
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

    def write_cell(self, sheet: Worksheet, row: int, col: int, value: Cell) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            sheet.write_boolean(row, col, value)
        elif isinstance(value, int | float):
            sheet.write_number(row, col, value)
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


class _Book(_Cells):
    """The four sheets of the export, filled one experiment at a time."""

    def __init__(self, workbook: Workbook) -> None:
        super().__init__(workbook)
        self.summary = _Sheet(self, "summary", SUMMARY_COLUMN_NAMES)
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
            self._colour_scales()
            self._chart()

    def _colour_scales(self) -> None:
        last = self.summary.rows
        for names, low, high in ((HIGHER_IS_BETTER, _RED, _GREEN), (LOWER_IS_BETTER, _GREEN, _RED)):
            for name in names:
                col = SUMMARY_COLUMN_NAMES.index(name)
                self.summary.worksheet.conditional_format(
                    1,
                    col,
                    last,
                    col,
                    {
                        "type": "3_color_scale",
                        "min_color": low,
                        "mid_color": _YELLOW,
                        "max_color": high,
                    },
                )

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
        chart.set_title({"name": "Output tokens per joule (raw energy), per experiment"})
        chart.set_x_axis({"name": "experiment_id"})
        chart.set_y_axis({"name": "output tokens / J"})
        chart.set_legend({"none": True})
        self.summary.worksheet.insert_chart(last + 2, 0, chart, {"x_scale": 2.0, "y_scale": 1.5})


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

"""CSV export: one row per experiment, the columns of :data:`SUMMARY_COLUMNS` in order.

RFC 4180 CSV (comma separated, ``"`` quoting, CRLF line ends), UTF-8 without a byte-order
mark, a header row of column names. Cells: a missing value is empty; booleans are ``true`` /
``false``; floats are written in full round-trip precision (``repr``); timestamps are ISO
8601 in UTC with microseconds (``2026-11-22T14:03:05.000000+00:00``). pandas
(``read_csv``), DuckDB (``read_csv``) and the ``csv`` module read it as is.
"""

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from os import PathLike

from llem_persistence.exporters._target import ResultSource, export_file
from llem_schema import ExperimentResult
from llem_schema.tabular.columns import Cell
from llem_schema.tabular.summary import SUMMARY_COLUMN_NAMES, summary_row

__all__ = ["export_csv", "format_csv_cell"]


def format_csv_cell(value: Cell) -> str:
    """The CSV text of one value (see the module docstring for the rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def export_csv(results: Iterable[ExperimentResult], path: str | PathLike[str]) -> int:
    """Write ``results`` to ``path`` as CSV, one row each, and return how many were written.

    Streams: one result is held at a time. No results gives a file with the header only.
    The file appears at ``path`` complete or not at all (a previous one stays untouched on
    failure). Raises :class:`ExportError` for a bad path or input.
    """
    source = ResultSource(results)
    with (
        export_file(path, "csv", source) as temporary,
        temporary.open("w", encoding="utf-8", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(SUMMARY_COLUMN_NAMES)
        for result in source:
            writer.writerow([format_csv_cell(value) for value in summary_row(result)])
    return source.count

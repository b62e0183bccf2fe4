"""CSV export: one row per experiment, the columns of :data:`SUMMARY_COLUMNS` in order.

RFC 4180 CSV (comma separated, ``"`` quoting, CRLF line ends), UTF-8 without a byte-order
mark, a header row of column names. Cells:

- a missing value is empty;
- booleans are ``true`` / ``false``;
- floats are written in full round-trip precision (``repr``);
- timestamps are ISO 8601 in UTC with microseconds and the offset
  (``2026-11-22T14:03:05.000000+00:00``), never naive or in a locale's form;
- a version number (the columns of :data:`CSV_VERSION_COLUMNS`: ``schema_version``, the
  driver's and CUDA's) is written with a leading ``v`` (``v1.3``), its one CSV-only form.
  A bare ``1.3`` is a number to every reader that guesses types (pandas, DuckDB, polars,
  Excel, LibreOffice; ``1.10`` even reads back as 1.1), and quoting does not stop them;
  ``v1.3`` is text to all of them. JSON, Parquet and xlsx keep ``1.3``.

CSV carries no types, so readers guess them from the values. A column that is empty in
every row (the energy columns of runs without energy) gives them nothing to guess from:
DuckDB and polars read it as text, pandas as float. ``docs/exports.md`` shows how to give
the types (from :data:`SUMMARY_COLUMNS`); Parquet keeps every type.
"""

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from os import PathLike
from typing import Final

from llem_persistence.exporters._target import ResultSource, export_file
from llem_schema import ExperimentResult
from llem_schema.tabular.columns import Cell
from llem_schema.tabular.summary import SUMMARY_COLUMN_NAMES, summary_row

__all__ = ["CSV_VERSION_COLUMNS", "VERSION_PREFIX", "csv_row", "export_csv", "format_csv_cell"]

VERSION_PREFIX: Final = "v"
"""What CSV writes before each value of :data:`CSV_VERSION_COLUMNS` (``v1.3``)."""

CSV_VERSION_COLUMNS: Final = (
    "schema_version",
    "environment_snapshot_driver_version",
    "environment_snapshot_cuda_version",
)
"""Text columns holding dotted version numbers (``1.3``, ``550.54``, ``12.4``), which a
reader would take for numbers: CSV writes them as ``v1.3``."""

_PREFIXED: Final = tuple(name in CSV_VERSION_COLUMNS for name in SUMMARY_COLUMN_NAMES)


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


def csv_row(result: ExperimentResult) -> list[str]:
    """The CSV cells of ``result``'s summary row, in the order of :data:`SUMMARY_COLUMNS`."""
    cells = [format_csv_cell(value) for value in summary_row(result)]
    return [
        VERSION_PREFIX + cell if prefixed and cell else cell
        for prefixed, cell in zip(_PREFIXED, cells, strict=True)
    ]


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
            writer.writerow(csv_row(result))
    return source.count

"""A small table (a comparison, a listing) to CSV, JSON or Excel, written atomically: what a
command shows, kept as a file.

CSV cells follow the export's rules (:func:`~llem_persistence.exporters.csv.format_csv_cell`);
JSON is an array of objects, one per row; Excel one sheet with a frozen header row.
"""

import csv
import json
from collections.abc import Sequence
from datetime import datetime
from os import PathLike
from typing import Final

from llem_persistence.exporters._target import ResultSource, export_file
from llem_persistence.exporters.csv import format_csv_cell
from llem_persistence.exporters.dispatch import format_for_path
from llem_persistence.exporters.errors import ExportError
from llem_persistence.exporters.xlsx import write_sheet
from llem_schema.tabular import Cell

__all__ = ["TABLE_FORMATS", "write_table"]

TABLE_FORMATS: Final = ("csv", "json", "xlsx")
"""The formats :func:`write_table` writes."""


def write_table(
    names: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    path: str | PathLike[str],
    *,
    format: str | None = None,
    sheet: str = "table",
) -> None:
    """Write ``rows`` under the column ``names`` to ``path`` (``csv``, ``json`` or ``xlsx``;
    default: from the file's suffix)."""
    name = format_for_path(path) if format is None else format.lower()
    if name not in TABLE_FORMATS:
        raise ExportError(f"a table is written as {', '.join(TABLE_FORMATS)}, not {name}")
    if any(len(row) != len(names) for row in rows):
        raise ExportError(f"every row must have {len(names)} cells, one per column")
    with export_file(path, name, ResultSource([])) as temporary:
        if name == "csv":
            with temporary.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(names)
                writer.writerows([format_csv_cell(value) for value in row] for row in rows)
        elif name == "json":
            objects = [
                {key: _json(value) for key, value in zip(names, row, strict=True)} for row in rows
            ]
            temporary.write_text(json.dumps(objects, indent=2) + "\n", encoding="utf-8")
        else:
            write_sheet(temporary, sheet, names, rows, path=path)


def _json(value: Cell) -> object:
    return value.isoformat() if isinstance(value, datetime) else value

"""Per-request export: one row per measured request of every result, the columns of
:data:`REQUEST_COLUMNS` in order, to CSV, Parquet or Excel, for a latency distribution or a
request's start against its latency in pandas, DuckDB or a spreadsheet.

Streams like every export (one result held at a time) and is written atomically. Excel holds
at most 1,048,575 rows under its header; more is an :class:`ExportError` that names Parquet
and CSV.
"""

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Final

import pyarrow.parquet as pq

from llem_persistence.exporters._target import ResultSource, export_file
from llem_persistence.exporters.csv import format_csv_cell
from llem_persistence.exporters.dispatch import format_for_path
from llem_persistence.exporters.errors import ExportError
from llem_persistence.exporters.parquet import BATCH_ROWS, arrow_schema, record_batch
from llem_persistence.exporters.xlsx import write_sheet
from llem_schema import ExperimentResult
from llem_schema.tabular import Cell
from llem_schema.tabular.columns import row_values
from llem_schema.tabular.requests import REQUEST_COLUMNS, each_request

__all__ = ["REQUEST_EXPORT_FORMATS", "RequestExport", "export_requests"]

REQUEST_EXPORT_FORMATS: Final = ("csv", "parquet", "xlsx")
"""The formats :func:`export_requests` writes."""

_NAMES: Final = [column.name for column in REQUEST_COLUMNS]


@dataclass(frozen=True)
class RequestExport:
    """What :func:`export_requests` wrote."""

    experiments: int
    requests: int


def export_requests(
    results: Iterable[ExperimentResult], path: str | PathLike[str], *, format: str | None = None
) -> RequestExport:
    """Write every request of ``results`` to ``path`` (``csv``, ``parquet`` or ``xlsx``;
    default: from the file's suffix); see the module docstring."""
    name = format_for_path(path) if format is None else format.lower()
    if name not in REQUEST_EXPORT_FORMATS:
        raise ExportError(
            f"the per-request export writes {', '.join(REQUEST_EXPORT_FORMATS)}, not {name}: "
            "each result.json already holds its requests"
        )
    source = ResultSource(results)
    rows = 0
    with export_file(path, name, source) as temporary:
        if name == "csv":
            rows = _write_csv(source, temporary)
        elif name == "parquet":
            rows = _write_parquet(source, temporary)
        else:
            rows = _write_xlsx(source, temporary, path)
    return RequestExport(source.count, rows)


def _rows(source: ResultSource) -> Iterable[list[Cell]]:
    for result in source:
        for request in each_request(result):
            yield row_values(REQUEST_COLUMNS, request)


def _write_csv(source: ResultSource, target: Path) -> int:
    count = 0
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_NAMES)
        for row in _rows(source):
            writer.writerow([format_csv_cell(value) for value in row])
            count += 1
    return count


def _write_parquet(source: ResultSource, target: Path) -> int:
    schema = arrow_schema(REQUEST_COLUMNS)
    count = 0
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        batch: list[list[Cell]] = []
        for row in _rows(source):
            batch.append(row)
            count += 1
            if len(batch) == BATCH_ROWS:
                writer.write_batch(record_batch(schema, batch))
                batch = []
        if batch or count == 0:
            writer.write_batch(record_batch(schema, batch))
    return count


def _write_xlsx(source: ResultSource, target: Path, path: str | PathLike[str]) -> int:
    return write_sheet(target, "requests", _NAMES, _rows(source), path=path)

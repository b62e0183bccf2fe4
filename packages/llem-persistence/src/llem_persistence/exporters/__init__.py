"""Exporters: results out to CSV, JSON, Parquet and Excel for pandas, DuckDB and spreadsheets.

- :func:`export_csv`, :func:`export_parquet`: one row per experiment, the columns of
  :data:`SUMMARY_COLUMNS` (documented, stable order; see
  :mod:`llem_schema.tabular.summary`).
- :func:`export_json`: a JSON array of complete results.
- :func:`export_xlsx`: summary, comparison, per-request, config and warnings sheets, colour
  scales on efficiency and latency, native charts.
- :func:`export`: picks one of them by ``format=`` or the file's suffix.
- :func:`export_requests`: one row per request, :data:`REQUEST_COLUMNS`, to CSV, Parquet or
  Excel.

Every export takes any iterable of :class:`~llem_schema.ExperimentResult` (a generator
too) and streams it, holding one result at a time. Every export is atomic: it appears at
its path complete or not at all, and a previous file stays until the new one replaces it.
No results writes a valid, empty export (header, schema or ``[]``). Bad input or an
unwritable path raises :class:`ExportError` with a one-line message.
"""

from llem_persistence.exporters.csv import export_csv
from llem_persistence.exporters.dispatch import (
    EXPORT_FORMATS,
    ExportFormat,
    export,
    format_for_path,
)
from llem_persistence.exporters.errors import ExportError, ExportTargetError
from llem_persistence.exporters.json import export_json
from llem_persistence.exporters.parquet import arrow_schema, export_parquet
from llem_persistence.exporters.requests import (
    REQUEST_EXPORT_FORMATS,
    RequestExport,
    export_requests,
)
from llem_persistence.exporters.table import TABLE_FORMATS, write_table
from llem_persistence.exporters.xlsx import export_xlsx
from llem_schema.tabular import (
    REQUEST_COLUMNS,
    SUMMARY_COLUMN_NAMES,
    SUMMARY_COLUMNS,
    Cell,
    Column,
    ColumnKind,
    RequestRow,
    summary_row,
)

__all__ = [
    "EXPORT_FORMATS",
    "REQUEST_COLUMNS",
    "REQUEST_EXPORT_FORMATS",
    "SUMMARY_COLUMNS",
    "SUMMARY_COLUMN_NAMES",
    "TABLE_FORMATS",
    "Cell",
    "Column",
    "ColumnKind",
    "ExportError",
    "ExportFormat",
    "ExportTargetError",
    "RequestExport",
    "RequestRow",
    "arrow_schema",
    "export",
    "export_csv",
    "export_json",
    "export_parquet",
    "export_requests",
    "export_xlsx",
    "format_for_path",
    "summary_row",
    "write_table",
]

"""A result as table rows: the one flattening of :class:`~llem_schema.ExperimentResult`.

:data:`SUMMARY_COLUMNS` (one row per experiment) and :data:`REQUEST_COLUMNS` (one row per
request) are defined here once, with each column's name, unit, type and description. The
exporters write them (CSV, Parquet, xlsx), the results store indexes from them, and pandas
users can build a frame from them with ``llem-schema`` alone::

    rows = [summary_row(result) for result in results]
    frame = pandas.DataFrame(rows, columns=SUMMARY_COLUMN_NAMES)
"""

from llem_schema.tabular.columns import Cell, Column, ColumnKind, row_values
from llem_schema.tabular.config import flatten_config
from llem_schema.tabular.requests import REQUEST_COLUMNS, RequestRow, each_request
from llem_schema.tabular.summary import (
    SUMMARY_BY_NAME,
    SUMMARY_COLUMN_NAMES,
    SUMMARY_COLUMNS,
    summary_row,
)

__all__ = [
    "REQUEST_COLUMNS",
    "SUMMARY_BY_NAME",
    "SUMMARY_COLUMNS",
    "SUMMARY_COLUMN_NAMES",
    "Cell",
    "Column",
    "ColumnKind",
    "RequestRow",
    "each_request",
    "flatten_config",
    "row_values",
    "summary_row",
]

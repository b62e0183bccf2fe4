"""Parquet export: a flat, typed table of many results, one row per experiment.

The columns are :data:`SUMMARY_COLUMNS` in order, typed: string, int64, float64, bool and
timestamp[us, tz=UTC]; a missing value is a null. Each field carries its description in
its metadata (``description``), and the schema metadata names the llem schema version that
wrote the file (``llem.schema_version``). zstd-compressed. pandas (``read_parquet``), polars
and DuckDB read it directly. No results gives a valid file with the schema and no rows.
"""

from collections.abc import Iterable, Sequence
from os import PathLike
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from llem_persistence.exporters._target import ResultSource, export_file
from llem_schema import SCHEMA_VERSION, ExperimentResult
from llem_schema.tabular.columns import Cell, Column, ColumnKind
from llem_schema.tabular.summary import SUMMARY_COLUMNS, summary_row

__all__ = ["BATCH_ROWS", "arrow_schema", "export_parquet", "record_batch"]

BATCH_ROWS: Final = 1024
"""Rows gathered into one record batch (and row group) before it is written."""

_ARROW_TYPES: Final[dict[ColumnKind, pa.DataType]] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(columns: Sequence[Column[Any]] = SUMMARY_COLUMNS) -> pa.Schema:
    """The Arrow schema of the Parquet export (by default of :data:`SUMMARY_COLUMNS`)."""
    fields = [
        pa.field(
            column.name,
            _ARROW_TYPES[column.kind],
            nullable=True,
            metadata={"description": column.description},
        )
        for column in columns
    ]
    return pa.schema(fields, metadata={"llem.schema_version": SCHEMA_VERSION})


def record_batch(schema: pa.Schema, rows: list[list[Cell]]) -> pa.RecordBatch:
    """``rows`` (lists of cells in ``schema``'s column order) as one Arrow record batch."""
    arrays = [
        pa.array([row[index] for row in rows], type=field.type)
        for index, field in enumerate(schema)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def export_parquet(results: Iterable[ExperimentResult], path: str | PathLike[str]) -> int:
    """Write ``results`` to ``path`` as Parquet and return how many rows were written.

    Streams through a ``ParquetWriter`` in batches of :data:`BATCH_ROWS` rows; written
    atomically like every export. Raises :class:`ExportError` for a bad path or input.
    """
    source = ResultSource(results)
    schema = arrow_schema()
    with (
        export_file(path, "parquet", source) as temporary,
        pq.ParquetWriter(temporary, schema, compression="zstd") as writer,
    ):
        rows: list[list[Cell]] = []
        for result in source:
            rows.append(summary_row(result))
            if len(rows) == BATCH_ROWS:
                writer.write_batch(record_batch(schema, rows))
                rows = []
        if rows:
            writer.write_batch(record_batch(schema, rows))
    return source.count

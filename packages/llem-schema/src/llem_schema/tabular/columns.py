"""Column specs: a name with its unit, a type, a description and how to read the value.

A :class:`Column` is defined once and used by every tabular exporter: the CSV writer formats
its values as text, the Parquet writer builds an Arrow array of :data:`ARROW_KINDS`-typed
values, and the xlsx writer picks a cell type. ``None`` is a missing value: an empty CSV or
xlsx cell, a Parquet null.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

__all__ = [
    "Cell",
    "Column",
    "ColumnKind",
    "boolean",
    "integer",
    "number",
    "row_values",
    "text",
    "timestamp",
]

Cell = str | int | float | bool | datetime | None
"""One exported value; ``None`` is missing."""

ColumnKind = Literal["string", "int64", "float64", "bool", "timestamp"]
"""The type of a column: Arrow's string, int64, float64, bool, timestamp[us, tz=UTC]."""

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Column(Generic[RowT]):
    """One exported column: ``get`` reads its value from a row (``None`` when missing)."""

    name: str
    kind: ColumnKind
    description: str
    get: Callable[[RowT], Cell]


def row_values(columns: Sequence[Column[RowT]], row: RowT) -> list[Cell]:
    """The values of ``row`` in the order of ``columns``."""
    return [column.get(row) for column in columns]


# Typed constructors: mypy checks that each getter returns what its column's kind promises.


def text(name: str, description: str, get: Callable[[RowT], str | None]) -> Column[RowT]:
    """A string column."""
    return Column(name, "string", description, get)


def integer(name: str, description: str, get: Callable[[RowT], int | None]) -> Column[RowT]:
    """A 64-bit integer column."""
    return Column(name, "int64", description, get)


def number(name: str, description: str, get: Callable[[RowT], float | None]) -> Column[RowT]:
    """A float64 column; integers a getter returns are stored as floats."""

    def as_float(row: RowT) -> float | None:
        value = get(row)
        return None if value is None else float(value)

    return Column(name, "float64", description, as_float)


def boolean(name: str, description: str, get: Callable[[RowT], bool | None]) -> Column[RowT]:
    """A boolean column."""
    return Column(name, "bool", description, get)


def timestamp(name: str, description: str, get: Callable[[RowT], datetime | None]) -> Column[RowT]:
    """A timezone-aware timestamp column, exported in UTC (microsecond precision)."""
    return Column(name, "timestamp", description, get)

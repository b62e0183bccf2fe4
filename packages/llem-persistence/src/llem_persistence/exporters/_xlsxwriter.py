"""Typed view of the parts of xlsxwriter the xlsx exporter uses (xlsxwriter ships no types)."""

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

import xlsxwriter
from xlsxwriter.exceptions import XlsxWriterException

__all__ = [
    "Chart",
    "Format",
    "Workbook",
    "Worksheet",
    "XlsxWriterError",
    "open_workbook",
]

XlsxWriterError: type[Exception] = XlsxWriterException
"""Base class of xlsxwriter's own errors (e.g. FileCreateError while closing)."""


class Format(Protocol):
    """A cell format."""


class Chart(Protocol):
    """A chart to be inserted into a worksheet."""

    def add_series(self, options: dict[str, Any]) -> None: ...
    def set_title(self, options: dict[str, Any]) -> None: ...
    def set_x_axis(self, options: dict[str, Any]) -> None: ...
    def set_y_axis(self, options: dict[str, Any]) -> None: ...
    def set_legend(self, options: dict[str, Any]) -> None: ...


class Worksheet(Protocol):
    """A worksheet; the ``write_*`` methods return 0, or a negative code on a problem."""

    def write_string(self, row: int, col: int, value: str, fmt: Format | None = None) -> int: ...
    def write_number(self, row: int, col: int, value: float, fmt: Format | None = None) -> int: ...
    def write_boolean(self, row: int, col: int, value: bool, fmt: Format | None = None) -> int: ...
    def write_datetime(
        self, row: int, col: int, value: datetime, fmt: Format | None = None
    ) -> int: ...
    def set_column(self, first_col: int, last_col: int, width: float) -> int: ...
    def freeze_panes(self, row: int, col: int) -> None: ...
    def autofilter(self, first_row: int, first_col: int, last_row: int, last_col: int) -> None: ...
    def conditional_format(
        self, first_row: int, first_col: int, last_row: int, last_col: int, options: dict[str, Any]
    ) -> int: ...
    def insert_chart(self, row: int, col: int, chart: Chart, options: dict[str, Any]) -> int: ...


class Workbook(Protocol):
    """A workbook being written."""

    def add_worksheet(self, name: str) -> Worksheet: ...
    def add_format(self, properties: dict[str, Any]) -> Format: ...
    def add_chart(self, options: dict[str, Any]) -> Chart: ...
    def set_properties(self, properties: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def open_workbook(path: Path, *, scratch_dir: Path) -> Workbook:
    """A workbook writing to ``path`` in constant-memory mode, scratch files in ``scratch_dir``.

    Constant-memory mode flushes each row once a later row of the same sheet is written, so
    rows must be written in order per sheet. Strings are never turned into formulas, URLs or
    numbers: what is written is what the cell holds.
    """
    options = {
        "constant_memory": True,
        "tmpdir": str(scratch_dir),
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    return cast(Workbook, xlsxwriter.Workbook(str(path), options))

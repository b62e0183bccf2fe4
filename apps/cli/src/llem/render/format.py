"""How the results commands print: one console, numbers and times formatted one way.

A terminal gets Rich's colours and its width; anything else (a pipe, a file, CI logs) gets
plain text, and tables are not cut to 80 columns (nor to ``$COLUMNS``), so each row stays one
line a script can split.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "MISSING",
    "JsonScalar",
    "console",
    "dumps",
    "dumps_rows",
    "local_time",
    "number",
    "size",
]

MISSING: Final = "-"
"""What a table shows where a value is missing (no energy measured, a run that failed)."""

_PLAIN_WIDTH: Final = 400

JsonScalar = str | int | float | bool | None
"""A value of a flat JSON row."""

# json's C encoder, with the item separator that puts each key of a row on its own line
_ROW_ENCODER: Final = json.JSONEncoder(separators=(",\n    ", ": "))


def console(*, stderr: bool = False) -> "Console":
    """A console on stdout (or stderr): colours on a terminal, plain text otherwise."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:  # a pipe or a file: never cut a row to $COLUMNS
        out = Console(stderr=stderr, highlight=False, width=_PLAIN_WIDTH)
    return out


def dumps(data: object) -> str:
    """JSON as every ``--json`` of the results commands prints it."""
    return json.dumps(data, indent=2)


def dumps_rows(rows: Sequence[Mapping[str, JsonScalar]]) -> str:
    """``dumps(rows)`` for a list of flat rows (every value a JSON scalar): the same text.

    ``indent`` sends ``json`` to its pure-Python encoder; here its C encoder writes each row
    and only the brackets around it are added (half the time over 10,000 rows). A JSON
    string never holds a raw newline, so the separator cannot occur inside a value.
    """
    if not rows:
        return "[]"
    encode = _ROW_ENCODER.encode
    return (
        "[\n  "
        + ",\n  ".join("{\n    " + encode(row)[1:-1] + "\n  }" if row else "{}" for row in rows)
        + "\n]"
    )


def number(value: float | int | None, digits: int = 1) -> str:
    """``1234.56`` -> ``1,234.6``; small values keep three significant digits; None -> ``-``."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and abs(value) < 10 ** (-digits) * 10:
        return f"{value:.3g}"
    return f"{value:,.{digits}f}"


def local_time(when: datetime | None) -> str:
    """A timestamp in the machine's local time, to the second."""
    if when is None:
        return MISSING
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(n_bytes: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")

"""How the results commands print: one console, numbers and times formatted one way.

A terminal gets Rich's colours and its width; anything else (a pipe, a file, CI logs) gets
plain text, and tables are not cut to 80 columns (nor to ``$COLUMNS``), so each row stays one
line a script can split.
"""

import json
from datetime import datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["MISSING", "console", "dumps", "local_time", "number", "size"]

MISSING: Final = "-"
"""What a table shows where a value is missing (no energy measured, a run that failed)."""

_PLAIN_WIDTH: Final = 400


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

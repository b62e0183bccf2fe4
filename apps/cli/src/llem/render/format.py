"""How the llem commands print: one console, tables that fit, numbers and times formatted one
way.

A terminal gets Rich's colours, and tables laid out to its width: a table too wide leaves out
its least useful columns (or, side by side, goes on in blocks), and no cell is broken inside a
word. Anything else (a pipe, a file, CI logs) gets plain text: every column, no box, columns
two spaces apart, nothing wrapped or cut, no spaces at line ends, so each row stays one line a
script can split.
"""

import json
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.table import Table

__all__ = [
    "MISSING",
    "Column",
    "JsonScalar",
    "Listing",
    "console",
    "dumps",
    "dumps_rows",
    "left_out",
    "number",
    "size",
    "unique_beginnings",
    "utc_time",
]

MISSING: Final = "-"
"""What a table shows where a value is missing (no energy measured, a run that failed)."""

GAP: Final = 2
"""Spaces between two columns of a table, on a terminal and in plain text alike."""

_PLAIN_WIDTH: Final = 400
"""The width a plain console lays out what is not a :class:`Listing` to (a Rich table)."""

JsonScalar = str | int | float | bool | None
"""A value of a flat JSON row."""

# json's C encoder, with the item separator that puts each key of a row on its own line
_ROW_ENCODER: Final = json.JSONEncoder(separators=(",\n    ", ": "))


def console(*, stderr: bool = False) -> "Console":
    """A console on stdout (or stderr): colours on a terminal; plain text otherwise, where
    nothing printed is wrapped or cut to 80 columns (nor to ``$COLUMNS``)."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, width=_PLAIN_WIDTH, soft_wrap=True)
    return out


@dataclass(frozen=True)
class Column:
    """A column of a :class:`Listing`: its heading, its cells and how they are laid out."""

    header: str
    """On a terminal, ``\\n`` puts it on several lines; plain text joins them with a space."""
    cells: Sequence[str]
    right: bool = False
    """Aligned right: figures."""
    wrap: bool = False
    """Its cells may wrap between words on a terminal, onto two lines at most (labels); any
    other cell keeps to one line."""
    style: str = ""
    """Rich's style of its cells on a terminal (``bold``, ``dim``)."""

    @property
    def width(self) -> int:
        """The narrowest it can be on a terminal without breaking a word: its longest cell or
        heading line, or, for a column that wraps, what its longest cell needs on two lines."""
        from rich.cells import cell_len

        if self.wrap:
            return max(map(_two_lines, (self.header, *self.cells)))
        return max(map(cell_len, (*self.header.split("\n"), *self.cells)))

    @property
    def plain_width(self) -> int:
        """How wide it is in plain text: its longest cell or heading, each on one line."""
        from rich.cells import cell_len

        return max(map(cell_len, (self.header.replace("\n", " "), *self.cells)))

    @property
    def one_value(self) -> str | None:
        """The value of every cell when two or more rows all hold the same one."""
        values = set(self.cells)
        return next(iter(values)) if len(values) == 1 and len(self.cells) > 1 else None


@dataclass(frozen=True)
class Listing:
    """A table that fits where it is printed: on a terminal, Rich's table with a rule under
    the headings (:meth:`fit` and :meth:`blocks` make it fit the terminal's width first);
    elsewhere every column, each row one line, two spaces between columns and none at the end.
    """

    columns: Sequence[Column]
    title: str | None = None
    show_header: bool = True
    sections: Collection[int] = field(default=())
    """The rows that start a new section (a blank line on a terminal)."""

    @property
    def width(self) -> int:
        """The narrowest it can be on a terminal without breaking a word."""
        return _width(self.columns)

    def fit(self, width: int, *, drop: Sequence[str] = ()) -> "Listing":
        """Without those columns of ``drop`` (headings, the least useful first) that do not
        fit in ``width``: the others, then these from the most useful on, each where it still
        fits. Among them, a column with the same value in every row counts as less useful than
        any other, and one of only missing values as the least useful of all."""
        by_header = {column.header: column for column in self.columns}
        kept = [column for column in self.columns if column.header not in drop]
        useful_first = sorted(drop, key=lambda h: (_value_rank(by_header[h]), -drop.index(h)))
        for header in useful_first:
            if _width([*kept, by_header[header]]) <= width:
                kept.append(by_header[header])
        shown = {column.header for column in kept}
        return replace(self, columns=[c for c in self.columns if c.header in shown])

    def blocks(self, width: int) -> list["Listing"]:
        """The listing cut into listings at most ``width`` wide, its side-by-side columns in
        order, each led by the first column (the labels) again; one listing if it fits."""
        label, *rest = self.columns
        blocks: list[list[Column]] = []
        for column in rest:
            if blocks and _width([label, *blocks[-1], column]) <= width:
                blocks[-1].append(column)
            else:
                blocks.append([column])
        return [replace(self, columns=[label, *block]) for block in blocks or [[]]]

    def __rich_console__(self, console: "Console", options: "ConsoleOptions") -> "RenderResult":
        from rich.cells import cell_len
        from rich.segment import Segment

        if options.is_terminal:
            yield self._table(plain=False)
            return
        table = self._table(plain=True)
        width = sum(c.plain_width for c in self.columns) + GAP * (len(self.columns) - 1)
        if self.title is not None:
            width = max(width, cell_len(self.title))
        for line in console.render_lines(table, options.update_width(width), pad=False):
            text = "".join(segment.text for segment in line if not segment.control).rstrip()
            yield Segment(text)
            yield Segment.line()

    def _table(self, *, plain: bool) -> "Table":
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(
            box=None if plain else box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, GAP // 2) if plain else (0, GAP - 1, 0, 0),
            show_header=self.show_header,
            title=self.title,
            title_justify="left",
            title_style="" if plain else "bold",
        )
        for column in self.columns:
            table.add_column(
                Text(column.header.replace("\n", " ") if plain else column.header),
                justify="right" if column.right else "left",
                no_wrap=plain or not column.wrap,
                overflow="fold" if column.wrap else "ellipsis",  # a word wider than the screen
                style=None if plain else column.style,
            )
        cells = [column.cells for column in self.columns]
        for index, row in enumerate(zip(*cells, strict=True)):
            if index in self.sections and index:
                table.add_section()
            table.add_row(*map(Text, row))
        return table


def _two_lines(text: str) -> int:
    """The narrowest ``text`` can be on two lines, broken between words."""
    from rich.cells import cell_len

    words = text.split()
    return min(
        (
            max(cell_len(" ".join(words[:at])), cell_len(" ".join(words[at:])))
            for at in range(1, len(words))
        ),
        default=cell_len(text),
    )


def _width(columns: Sequence[Column]) -> int:
    return sum(column.width for column in columns) + GAP * max(0, len(columns) - 1)


def _value_rank(column: Column) -> int:
    """0 for a column of different values, 1 for one value in every row, 2 for only missing
    values."""
    value = column.one_value
    return 0 if value is None else 2 if value == MISSING else 1


def left_out(full: Listing, shown: Listing) -> str | None:
    """What of ``full`` the narrower ``shown`` leaves out: ``not shown at this width:
    created, batch; the same in every row: backend pytorch; empty: energy J (...)``; None
    when nothing is missing."""
    headers = {column.header for column in shown.columns}
    missing = [column for column in full.columns if column.header not in headers]
    if not missing:
        return None
    varied = [c.header for c in missing if c.one_value is None]
    same = [f"{c.header} {c.one_value}" for c in missing if c.one_value not in (None, MISSING)]
    empty = [c.header for c in missing if c.one_value == MISSING]
    parts = [
        f"{name}{', '.join(headers)}".replace("\n", " ")
        for name, headers in (("", varied), ("the same in every row: ", same), ("empty: ", empty))
        if headers
    ]
    return f"not shown at this width: {'; '.join(parts)} (a pipe or --json has every column)"


def unique_beginnings(ids: Iterable[str], among: Iterable[str]) -> dict[str, str]:
    """Each of ``ids`` cut to the shortest beginning that no other id of ``ids`` or ``among``
    starts with, run on to the end of the word it stops in (``…T16-04-27``, not ``…T16-04-2``):
    the form ``llem results show`` looks an id up by. An id that another one begins with
    stays whole, since a whole id is looked up before any beginning."""
    wanted = list(dict.fromkeys(ids))
    known = sorted({*wanted, *among})
    shortened = {}
    for experiment_id in wanted:
        at = bisect_left(known, experiment_id)
        neighbours = known[max(0, at - 1) : at] + known[at + 1 : at + 2]
        length = 1 + max((_shared(experiment_id, n) for n in neighbours), default=0)
        while length < len(experiment_id) and experiment_id[length].isalnum():
            length += 1
        shortened[experiment_id] = experiment_id[:length]
    return shortened


def _shared(first: str, second: str) -> int:
    """How many characters two strings begin with alike."""
    return next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )


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


def utc_time(when: datetime | None) -> str:
    """A timestamp in UTC, to the second, with its offset: ``2026-12-02 16:00:31+00:00``, the
    zone of experiment ids (``…_2026-12-02T16-00-31_…``). ``--since`` and ``--until`` read
    this form, and read a time without an offset as UTC too."""
    if when is None:
        return MISSING
    return when.astimezone(UTC).isoformat(sep=" ", timespec="seconds")


def size(n_bytes: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")

"""The results tables on a terminal 80 and 120 columns wide, and piped.

On a terminal every line fits, no cell is broken inside a word, the labels stay and the ids
shown are ones ``llem results show`` takes; piped, each row is one line with every column,
whole ids and no spaces at line ends. The terminal is Rich's: ``TTY_COMPATIBLE=1`` and
``COLUMNS`` make stdout one, whatever pytest captures it with.
"""

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from llem_schema import ExperimentResult
from llem_store import ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]
MakeResult = Callable[..., ExperimentResult]

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WIDTHS = pytest.mark.parametrize("width", [80, 120])

# as `llem run` names them: {model}_{backend}_{UTC start}_{6 hex}; two in one second
EXPERIMENTS = {
    "model-a_pytorch_2026-12-02T16-00-31_bc3fdf": ("org/model-a", "fp32", 0),
    "model-a_pytorch_2026-12-02T16-00-52_0a1b2c": ("org/model-a", "fp16", 21),
    "model-a_pytorch_2026-12-02T16-00-52_0a9f00": ("org/model-a", "fp16", 21),
    "model-b_pytorch_2026-12-03T09-12-00_123456": ("org/model-b", "fp32", 61_889),
}
"""Experiment id -> model, precision, seconds after :data:`START`; listed newest first."""
START = datetime(2026, 12, 2, 16, 0, 31, tzinfo=UTC)
NEWEST_FIRST = list(reversed(EXPERIMENTS))


@pytest.fixture
def store(tmp_path: Path, make_result: MakeResult) -> Path:
    """A store of :data:`EXPERIMENTS` (their figures differ; the second has a warning)."""
    db = tmp_path / "results" / "llem.db"
    with ResultStore(db) as opened:
        for index, (experiment_id, (model, precision, after_s)) in enumerate(EXPERIMENTS.items()):
            result = make_result(
                experiment_id,
                model=model,
                precision=precision,
                batch_size=index + 1,
                n_requests=4 + index,
                energy_j=100.0 + 1_000 * index,
                start_time=START + timedelta(seconds=after_s),
                warnings=("measurement window was 10.0 s, shorter than 60 s",) * (index == 1),
            )
            opened.ingest(result.save(db.parent / f"run_{index}"))
    return db


def cells(line: str) -> list[str]:
    """A row's cells: the texts two or more spaces apart."""
    return re.split(r"\s{2,}", line.strip())


def on_terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """What llem prints from here on goes to a terminal ``width`` columns wide."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")


def screen(outcome: Outcome) -> list[str]:
    """The lines a user sees (styles left out)."""
    assert outcome.exit_code == 0, outcome.stderr
    return _ESCAPE.sub("", outcome.stdout).splitlines()


def table_rows(lines: list[str]) -> list[str]:
    """The lines under a table's rule, up to the first that is no row of it."""
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip() or line.startswith(("showing", "not shown", "ids are")):
            break
        rows.append(line)
    return rows


@WIDTHS
def test_list_fits_with_ids_show_takes(
    llem: Llem, store: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    piped = llem("results", "list", "--db", str(store)).stdout.splitlines()
    whole = {cells(line)[0]: set(cells(line)[1:]) for line in piped[1:-1]}  # id -> cells
    on_terminal(monkeypatch, width)
    lines = screen(llem("results", "list", "--db", str(store)))
    assert max(map(len, lines)) <= width
    rows = table_rows(lines)
    assert len(rows) == len(EXPERIMENTS)  # a line each: nothing wrapped
    shown = [cells(row)[0] for row in rows]
    assert shown == [
        "model-b",
        "model-a_pytorch_2026-12-02T16-00-52_0a9f00",  # two in one second: whole
        "model-a_pytorch_2026-12-02T16-00-52_0a1b2c",
        "model-a_pytorch_2026-12-02T16-00-31",
    ]
    assert "ids are cut to a unique beginning, which `llem results show` takes" in " ".join(lines)
    for beginning, experiment_id in zip(shown, NEWEST_FIRST, strict=True):
        found = llem("results", "show", beginning, "--db", str(store))
        assert f"id {experiment_id}" in [" ".join(line.split()) for line in screen(found)]
    # no cell broken: each is one the piped table has whole in that row
    for row, experiment_id in zip(rows, NEWEST_FIRST, strict=True):
        assert set(cells(row)[1:]) <= whole[experiment_id], row
    # every heading is shown, or named as not shown
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    headings = " ".join(lines[:rule]).split()
    assert {"id", "model", "tok/J"} <= set(headings)
    note = " ".join(lines[rule:])
    for heading in ("created", "backend", "precision", "status", "energy", "warnings"):
        assert (heading in headings) != (heading in note.split("not shown at this width:")[-1])
    assert "backend pytorch" in note  # one value in every row, said


def test_list_at_120_columns_shows_more_than_at_80(
    llem: Llem, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def headings(width: int) -> list[str]:
        on_terminal(monkeypatch, width)
        lines = screen(llem("results", "list", "--db", str(store)))
        rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
        return " ".join(lines[:rule]).split()

    narrow, wide = headings(80), headings(120)
    assert set(narrow) < set(wide)
    assert "precision" in set(wide) - set(narrow)
    on_terminal(monkeypatch, 250)  # wide enough for everything: whole ids, every column
    lines = screen(llem("results", "list", "--db", str(store)))
    assert [row.split()[0] for row in table_rows(lines)] == NEWEST_FIRST
    assert not any(line.startswith(("not shown", "ids are")) for line in lines)


def test_piped_list_is_plain_whole_and_unpadded(llem: Llem, store: Path) -> None:
    outcome = llem("results", "list", "--db", str(store), "--all")
    assert outcome.exit_code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert lines[0].split("  ")[:3] == ["id", "", ""]  # two spaces between columns at least
    assert lines[0].split() == [
        *("id", "created", "model", "backend", "precision", "batch", "status", "requests"),
        *("output", "tok/s", "energy", "J", "tok/J", "TTFT", "p50", "ms", "warnings"),
    ]
    assert [line.split()[0] for line in lines[1:-1]] == NEWEST_FIRST
    assert all(line == line.rstrip() for line in lines)
    assert "─" not in outcome.stdout


@WIDTHS
def test_compare_keeps_its_labels(
    llem: Llem, store: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    ids = list(EXPERIMENTS)
    piped = llem("results", "compare", *ids, "--db", str(store)).stdout.splitlines()
    labels = [cells(line)[0] for line in piped[1:]]
    on_terminal(monkeypatch, width)
    lines = screen(llem("results", "compare", *ids, "--db", str(store)))
    assert max(map(len, lines)) <= width
    # too narrow for four whole ids as headings: #1 to #4, under the ids
    assert lines[: len(ids)] == [f"#{n}  {i}" for n, i in enumerate(ids, 1)]
    rules = [i for i, line in enumerate(lines) if line.startswith("───")]
    ends = [rule - 1 for rule in rules[1:]] + [len(lines)]  # the next block's headings
    blocks = [lines[start + 1 : end] for start, end in zip(rules, ends, strict=True)]
    # two blocks (two and two on 80 columns, three and one on 120), the labels in each
    assert [lines[i - 1].split() for i in rules] == (
        [["#1", "#2"], ["#3", "#4"]] if width == 80 else [["#1", "#2", "#3"], ["#4"]]
    )
    for block in blocks:
        shown = [cells(line)[0] for line in block if line.strip() and not line.startswith(" ")]
        # every label whole, or (the longest) on two lines broken between words
        assert [label for label in labels if label not in shown] in (
            [],
            ["J per output token vs first"],
        )
        assert "J per output token vs first" in shown or "J per output token vs" in shown
    models = [cells(line)[1:] for line in lines if line.startswith("model ")]
    assert [model for row in models for model in row] == ["org/model-a"] * 3 + ["org/model-b"]


def test_compare_with_room_has_the_ids_as_headings(
    llem: Llem, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_terminal(monkeypatch, 120)
    first, second = list(EXPERIMENTS)[:2]
    lines = screen(llem("results", "compare", first, second, "--db", str(store)))
    assert lines[0].split() == [first, second]
    assert max(map(len, lines)) <= 120
    assert lines[2].split() == ["model", "org/model-a", "org/model-a"]


def test_piped_compare_is_plain_with_whole_ids(llem: Llem, store: Path) -> None:
    ids = list(EXPERIMENTS)
    outcome = llem("results", "compare", *ids, "--db", str(store))
    assert outcome.exit_code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert lines[0].split() == ids
    assert all(line == line.rstrip() for line in lines)
    labels = [line.split("  ")[0] for line in lines[1:]]
    assert "J per output token vs first" in labels  # on one line
    assert "energy J (adjusted)" in labels


@WIDTHS
def test_show_fits(llem: Llem, store: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    on_terminal(monkeypatch, width)
    experiment_id = list(EXPERIMENTS)[1]
    lines = screen(llem("results", "show", experiment_id, "--db", str(store)))
    assert max(map(len, lines)) <= width
    words = [" ".join(line.split()) for line in lines]
    assert f"id {experiment_id}" in words
    assert "precision fp16" in words
    statistics = next(i for i, line in enumerate(lines) if line.startswith("per-request"))
    heading = lines[statistics + 1].split()
    assert heading[:1] == ["metric"]
    assert {"p50", "p95"} <= set(heading)
    for line in lines[statistics + 3 : statistics + 7]:
        assert len(line.split()) == len(heading)  # a figure under each heading, whole


def test_times_are_utc_as_the_ids_are_whatever_the_local_zone(
    llem: Llem, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        created = "2026-12-02 16:00:31+00:00"  # START, as the id's 2026-12-02T16-00-31 says
        listed = llem("results", "list", "--db", str(store)).stdout.splitlines()
        first = next(line for line in listed if line.startswith(NEWEST_FIRST[-1]))
        assert created in cells(first)
        shown = llem("results", "show", NEWEST_FIRST[-1], "--db", str(store)).stdout
        assert f"created {created}" in [" ".join(line.split()) for line in shown.splitlines()]
        compared = llem("results", "compare", *NEWEST_FIRST[-2:], "--db", str(store)).stdout
        assert created in cells(next(x for x in compared.splitlines() if x.startswith("created")))
        # what is shown reads back as a bound; a bare time is read in the same zone, UTC
        for since in (created, "2026-12-02T16:00:31", "2026-12-02T16:00:32"):
            outcome = llem("results", "list", "--db", str(store), "--since", since, "--json")
            found = [row["experiment_id"] for row in json.loads(outcome.stdout)]
            assert (NEWEST_FIRST[-1] in found) == since.endswith(("31", "00")), since
    finally:
        monkeypatch.undo()
        time.tzset()


def test_since_and_until_say_which_zone_they_read(llem: Llem) -> None:
    helped = " ".join(llem("results", "list", "--help").stdout.replace("│", " ").split())
    assert (
        "--since SINCE Started at or after: 2026-11-01, 2026-11-01T14:30, 7d, 12h. A date or "
        "time is UTC, as ids and `created` are, unless it gives its offset "
        "(2026-11-01T14:30+01:00). --until UNTIL Started before (a date includes that "
        "whole day); UTC, as for --since."
    ) in helped

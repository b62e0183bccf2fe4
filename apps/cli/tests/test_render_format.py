"""How the commands print: JSON (``dumps_rows`` is ``dumps`` for flat rows), tables that fit a
terminal or print plain, ids cut to unique beginnings, and times with their offset."""

import io
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from llem.render.format import (
    MISSING,
    Column,
    JsonScalar,
    Listing,
    console,
    dumps,
    dumps_rows,
    left_out,
    unique_beginnings,
    utc_time,
)


def test_dumps_rows_prints_what_dumps_prints() -> None:
    rows: list[dict[str, JsonScalar]] = [
        {
            "experiment_id": "exp_1",
            "name": None,
            "complete": True,
            "failed": False,
            "requests": 100,
            "energy_j": 12.5,
            "tiny": 1.5e-07,
            "huge": 1.0e21,
            "nan": float("nan"),
            "inf": float("-inf"),
        },
        {
            "text": 'quotes " and \\ backslashes, a newline\n, a tab\t and ",\n    " too',
            "unicode": "café ✓ 🙂",
            "": "an empty key",
            "control": "\x00\x1f",
        },
        {},
        {"only": 1},
    ]
    assert dumps_rows(rows) == dumps(rows)
    assert json.loads(dumps_rows(rows[:2]))[1] == rows[1]
    assert dumps_rows([]) == dumps([]) == "[]"


IDS = [
    "tiny_pytorch_2026-12-02T16-00-31_bc3fdf",
    "tiny_pytorch_2026-12-02T16-00-52_0a1b2c",
    "tiny_pytorch_2026-12-02T16-00-52_0a9f00",  # the same second
    "tiny_pytorch_2026-12-03T09-12-00_123456",
    "qwen2.5-0.5b_vllm_2026-12-02T16-00-31_bc3fdf",
    "exp_1",
    "exp_10",  # begins with exp_1
]


def test_unique_beginnings_are_the_shortest_whole_words_only_one_id_starts_with() -> None:
    short = unique_beginnings(IDS[:4], IDS)
    assert short == {
        "tiny_pytorch_2026-12-02T16-00-31_bc3fdf": "tiny_pytorch_2026-12-02T16-00-31",
        "tiny_pytorch_2026-12-02T16-00-52_0a1b2c": "tiny_pytorch_2026-12-02T16-00-52_0a1b2c",
        "tiny_pytorch_2026-12-02T16-00-52_0a9f00": "tiny_pytorch_2026-12-02T16-00-52_0a9f00",
        "tiny_pytorch_2026-12-03T09-12-00_123456": "tiny_pytorch_2026-12-03T09",
    }
    everything = unique_beginnings(IDS, [])
    for experiment_id, beginning in everything.items():
        starting = [other for other in IDS if other.startswith(beginning)]
        # the lookup: a whole id first, else the one id the beginning starts
        assert beginning == experiment_id or starting == [experiment_id], beginning
    assert everything["qwen2.5-0.5b_vllm_2026-12-02T16-00-31_bc3fdf"] == "qwen2"
    assert everything["exp_1"] == "exp_1"  # exp_10 begins with it: whole
    assert everything["exp_10"] == "exp_10"
    assert unique_beginnings(["only_one_id"], []) == {"only_one_id": "only"}


def terminal_lines(listing: Listing, width: int) -> list[str]:
    """``listing`` on a terminal ``width`` columns wide, without colours."""
    out = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    out.print(listing)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return [line.rstrip() for line in text.splitlines()]


LISTING = Listing(
    [
        Column("name", ["a long label that wraps", "short"], wrap=True),
        Column("output\ntok/s", ["1,234.5", "7.0"], right=True),
        Column("backend", ["pytorch", "pytorch"]),
        Column("energy J", [MISSING, MISSING], right=True),
        Column("model", ["org/model-a", "org/model-b"]),
    ]
)
DROP = ("energy J", "backend", "model", "output\ntok/s")


def test_plain_text_has_every_column_on_one_line_two_spaces_apart_and_no_padding(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "30")  # no matter: plain text is not cut to it
    console().print(LISTING)
    assert capsys.readouterr().out.splitlines() == [
        "name                     output tok/s  backend  energy J  model",
        "a long label that wraps       1,234.5  pytorch         -  org/model-a",
        "short                             7.0  pytorch         -  org/model-b",
    ]


def test_a_terminal_gets_the_columns_that_fit_and_breaks_no_word() -> None:
    assert LISTING.fit(200, drop=DROP) == LISTING
    narrow = LISTING.fit(34, drop=DROP)
    # the column of only missing values goes first, then the one with one value in every
    # row, then the others from the least useful on; the labels never go. What fits is
    # kept: 2 columns narrower, the one value of backend would take model's place
    assert [c.header for c in narrow.columns] == ["name", "output\ntok/s", "model"]
    assert terminal_lines(narrow, 34) == [
        "               output",
        "name            tok/s  model",
        "─" * 34,
        "a long label  1,234.5  org/model-a",  # the labels on two lines at most
        "that wraps",
        "short             7.0  org/model-b",
    ]
    assert left_out(LISTING, narrow) == (
        "not shown at this width: the same in every row: backend pytorch; empty: energy J "
        "(a pipe or --json has every column)"
    )
    assert left_out(LISTING, LISTING) is None
    assert [c.header for c in LISTING.fit(32, drop=DROP).columns] == [
        "name",
        "output\ntok/s",
        "backend",
    ]
    wider = LISTING.fit(43, drop=DROP)
    assert [c.header for c in wider.columns] == ["name", "output\ntok/s", "backend", "model"]
    assert left_out(LISTING, wider) == (
        "not shown at this width: empty: energy J (a pipe or --json has every column)"
    )


def test_blocks_repeat_the_labels() -> None:
    listing = Listing(
        [
            Column("", ["model", "energy J (adjusted)"], wrap=True),
            *(Column(f"#{i}", ["org/model-a", "12.5"], right=True) for i in range(1, 4)),
        ]
    )
    assert listing.blocks(80) == [listing]
    first, second = listing.blocks(40)
    assert terminal_lines(first, 40) == [
        "                         #1           #2",
        "─" * 40,
        "model           org/model-a  org/model-a",
        "energy J               12.5         12.5",
        "(adjusted)",
    ]
    assert terminal_lines(second, 40) == [
        "                              #3",
        "─" * 32,
        "model                org/model-a",
        "energy J (adjusted)         12.5",
    ]


def test_times_are_shown_in_utc_the_zone_of_ids_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    when = datetime(2026, 12, 2, 17, 0, 31, tzinfo=timezone(timedelta(hours=1)))
    for zone in ("UTC", "Europe/Berlin", "America/New_York"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert utc_time(when) == "2026-12-02 16:00:31+00:00"
    assert datetime.fromisoformat(utc_time(when)) == when  # what --since reads
    monkeypatch.undo()
    time.tzset()


def test_the_run_summary_prints_each_note_once_and_plain_when_piped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from llem.render.summary import summary
    from llem_persistence import aggregate_results
    from llem_schema.testing import example_config, example_raw_result

    config = example_config()
    raw = example_raw_result(config=config, process_index=0, num_processes=2)
    result = aggregate_results([raw], effective_config=config.model_dump(mode="json"))
    assert result.aggregation.warnings  # a note of the missing process
    console().print(summary(result, tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "llem/tiny on pytorch"
    assert all(line == line.rstrip() for line in lines)
    assert not set("┏┃━│") & set("".join(lines))
    for note in result.aggregation.warnings:
        assert sum(note.message in line for line in lines) == 1, note.message
    assert lines[-1] == f"result: {tmp_path}"

    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    console().print(summary(result, tmp_path))
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().out).splitlines()
    assert max(map(len, shown)) <= 80
    assert [" ".join(line.split()) for line in shown[1:3]] == [
        f"duration {result.duration_s:,.2f} s",
        f"tokens in / out {result.input_tokens:,} / {result.output_tokens:,}",
    ]

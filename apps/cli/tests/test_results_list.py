"""``llem results list``: what a user sees, filtered, sorted and paged, from a real store."""

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from llem_persistence.staging import StagingRepository
from llem_schema import ExperimentResult
from llem_schema.testing import example_config
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


def ids(stdout: str) -> list[str]:
    """The id column of a printed table (rows start with an experiment id)."""
    return [line.split()[0] for line in stdout.splitlines() if line.strip().startswith("exp_")]


def listed(llem: Llem, results: Path, *args: str) -> list[dict[str, Any]]:
    outcome = llem("results", "list", "--db", str(results / "llem.db"), "--json", *args)
    assert outcome.exit_code == 0, outcome.stderr
    rows: list[dict[str, Any]] = json.loads(outcome.stdout)
    return rows


def test_the_table_lists_completed_experiments_newest_first(llem: Llem, results: Path) -> None:
    outcome = llem("results", "list", "--db", str(results / "llem.db"))
    assert outcome.exit_code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    header = next(line for line in lines if line.strip().startswith("id"))
    assert header.split() == [
        *("id", "created", "model", "backend", "precision", "batch", "status", "requests"),
        *("output", "tok/s", "energy", "J", "tok/J", "TTFT", "p50", "ms", "warnings"),
    ]
    assert ids(outcome.stdout) == ["exp_3", "exp_2", "exp_1", "exp_0"]
    row = next(line for line in lines if line.strip().startswith("exp_1"))
    assert "2026-11-23 14:03:05+00:00" in row  # UTC, as ids are
    assert row.split()[3:9] == ["org/model-b", "pytorch", "fp16", "1", "completed", "5"]
    assert row.split()[-1] == "1"  # one warning
    assert "\x1b[" not in outcome.stdout  # no colour when not a terminal
    assert lines[-1] == "showing 4 of 4"


def test_a_missing_figure_is_a_dash(llem: Llem, results: Path) -> None:
    outcome = llem("results", "list", "--db", str(results / "llem.db"), "--model", "model-b")
    row = next(line for line in outcome.stdout.splitlines() if "exp_3" in line)
    energy_j, tokens_per_j = row.split()[-4:-2]
    assert (energy_j, tokens_per_j) == ("-", "-")


@contextlib.contextmanager
def local_timezone(name: str) -> Iterator[None]:
    """The process's local time zone set to ``name`` (POSIX ``TZ``), then restored."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_filters_by_model_backend_dates_and_efficiency(llem: Llem, results: Path) -> None:
    def selected(*args: str) -> list[object]:
        return [row["experiment_id"] for row in listed(llem, results, *args)]

    assert selected("--model", "MODEL-A") == ["exp_2", "exp_0"]
    assert selected("--backend", "pyt") == ["exp_3", "exp_2", "exp_1", "exp_0"]
    assert selected("--backend", "vllm") == []
    assert selected("--since", "2026-11-23T14:03:05+00:00", "--until", "2026-11-24T15:00Z") == [
        "exp_2",
        "exp_1",
    ]
    # dates without a time are UTC, whatever the local zone; a bare --until date includes it
    with local_timezone("America/New_York"):
        assert selected("--since", "2026-11-23", "--until", "2026-11-24") == ["exp_2", "exp_1"]
        assert selected("--until", "2026-11-22") == ["exp_0"]
    with ResultStore(results / "llem.db") as store:
        efficiency = {s.experiment_id: s.output_tokens_per_j for s in store.list_experiments()}
    threshold = sorted(v for v in efficiency.values() if v is not None)[1]
    assert selected("--min-tokens-per-j", str(threshold)) == sorted(
        (k for k, v in efficiency.items() if v is not None and v >= threshold), reverse=True
    )


def test_filters_by_warning_code(llem: Llem, results: Path) -> None:
    def selected(*args: str) -> list[object]:
        return [row["experiment_id"] for row in listed(llem, results, *args)]

    assert selected("--warning", "short_window") == ["exp_1"]
    assert selected("--warning", "no_energy") == ["exp_3"]
    assert selected("--warning", "throttled") == []
    table = llem("results", "list", "--db", str(results / "llem.db"), "--warning", "no_energy")
    assert table.exit_code == 0, table.stderr
    assert "exp_3" in table.stdout
    assert "exp_1" not in table.stdout


def test_an_unknown_warning_code_is_a_usage_error_listing_the_codes(
    llem: Llem, results: Path
) -> None:
    outcome = llem("results", "list", "--db", str(results / "llem.db"), "--warning", "hot")
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith("error: unknown warning code 'hot': choose from ")
    assert "short_window" in outcome.stderr
    assert "\n" not in outcome.stderr.rstrip("\n")


def test_schema_warnings_lists_every_code_with_its_meaning(llem: Llem) -> None:
    from llem_schema import WARNING_CODES

    listed_codes = llem("schema", "warnings", "--json")
    assert listed_codes.exit_code == 0, listed_codes.stderr
    assert json.loads(listed_codes.stdout) == dict(WARNING_CODES)
    table = llem("schema", "warnings")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert len(lines) == len(WARNING_CODES)
    assert lines[0].split()[0] == next(iter(WARNING_CODES))


def test_since_takes_a_relative_age(llem: Llem, make_result: MakeResult, tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    now = datetime.now(UTC)
    with ResultStore(db) as store:
        for experiment_id, age in (("exp_new", timedelta(hours=2)), ("exp_old", timedelta(days=3))):
            store.ingest(make_result(experiment_id, start_time=now - age).save(tmp_path))
    for since, expected in (("1d", ["exp_new"]), ("90m", []), ("3h", ["exp_new"]), ("4d", 2)):
        outcome = llem("results", "list", "--db", str(db), "--since", since, "--json")
        found = [row["experiment_id"] for row in json.loads(outcome.stdout)]
        assert found == expected if isinstance(expected, list) else len(found) == expected


def test_dates_at_the_edges_of_the_calendar_are_no_bound(
    llem: Llem, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # year 1 in Tokyo is year 0 in UTC
    time.tzset()
    try:
        for args in (("--until", "9999-12-31"), ("--since", "0001-01-01")):
            found = listed(llem, results, *args)
            assert len(found) == 4, args
    finally:
        monkeypatch.undo()
        time.tzset()
    outcome = llem("results", "list", "--db", str(results / "llem.db"), "--since", "99999999d")
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        "error: --since '99999999d': give a date (2026-11-01), a date and time "
        "(2026-11-01T14:30) or an age (7d, 12h, 30m) within the years 1 to 9999\n",
    )


def test_sort_limit_and_offset(llem: Llem, results: Path) -> None:
    with ResultStore(results / "llem.db") as store:
        by_efficiency = [
            s.experiment_id
            for s in sorted(
                (s for s in store.list_experiments() if s.output_tokens_per_j is not None),
                key=lambda s: s.output_tokens_per_j or 0.0,
            )
        ]
    rows = listed(llem, results, "--sort", "tokens_per_j", "--asc")
    assert [r["experiment_id"] for r in rows] == [*by_efficiency, "exp_3"]  # missing: last
    rows = listed(llem, results, "--sort", "tokens_per_j")
    assert [r["experiment_id"] for r in rows] == [*reversed(by_efficiency), "exp_3"]

    page = llem(
        "results", "list", "--db", str(results / "llem.db"), "--limit", "2", "--offset", "1"
    )
    assert ids(page.stdout) == ["exp_2", "exp_1"]
    assert page.stdout.splitlines()[-1] == "showing 2 of 4 (--limit 0 for all)"
    everything = llem("results", "list", "--db", str(results / "llem.db"), "--limit", "0")
    assert len(ids(everything.stdout)) == 4


def test_json_rows_are_the_stores_summaries(llem: Llem, results: Path) -> None:
    rows = listed(llem, results)
    with ResultStore(results / "llem.db") as store:
        expected = [s.to_json_dict() for s in store.list_experiments()]
    assert rows == expected
    assert Path(rows[0]["result_path"]).parent == results  # absolute, in the results directory


def test_all_adds_running_failed_and_staged_runs(llem: Llem, results: Path) -> None:
    config = example_config(model="org/model-c")
    with ResultStore(results / "llem.db") as store:
        store.mark_running("exp_running", config)
        store.mark_running("exp_failed", config)
        store.mark_failed("exp_failed", "process 1 was killed by signal 9")
    staging = StagingRepository(results)
    staging.begin(config, "exp_staged", 2)
    staging.begin(config, "exp_running", 1)  # staged and indexed: listed once, as running

    default = [r["experiment_id"] for r in listed(llem, results)]
    assert "exp_running" not in default
    rows = {r["experiment_id"]: r for r in listed(llem, results, "--all")}
    assert sorted(rows) == [
        "exp_0",
        "exp_1",
        "exp_2",
        "exp_3",
        "exp_failed",
        "exp_running",
        "exp_staged",
    ]
    assert rows["exp_running"]["status"] == "running"
    assert rows["exp_failed"]["status"] == "failed"
    assert rows["exp_failed"]["error"] == "process 1 was killed by signal 9"
    assert rows["exp_staged"]["status"] == "staged"
    assert rows["exp_staged"]["model"] == "org/model-c"
    assert rows["exp_staged"]["num_processes"] == 2

    table = llem("results", "list", "--db", str(results / "llem.db"), "--all")
    staged_row = next(line for line in table.stdout.splitlines() if "exp_staged" in line)
    assert "staged" in staged_row.split()
    assert table.stdout.splitlines()[-1] == (
        "showing 6 of 6; 1 staged run not indexed (recover with "
        f"`llem aggregate ID --output {results}`)"
    )
    only = listed(llem, results, "--status", "staged", "--status", "failed")
    # a run recorded as running is staged too: without `running` asked for, it shows as staged
    assert [(r["experiment_id"], r["status"]) for r in only] == [
        ("exp_failed", "failed"),
        ("exp_running", "staged"),
        ("exp_staged", "staged"),
    ]


def test_an_empty_store_says_so(llem: Llem, tmp_path: Path) -> None:
    db = tmp_path / "llem.db"
    ResultStore(db).close()
    outcome = llem("results", "list", "--db", str(db))
    assert outcome.exit_code == 0
    assert outcome.stdout == (
        f"no matching experiments in {db} (--all also lists running, failed, incomplete and "
        "staged runs)\n"
    )


def test_the_db_comes_from_llem_db_when_not_given(
    llem: Llem, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_DB", str(results / "llem.db"))
    outcome = llem("results", "list")
    assert outcome.exit_code == 0, outcome.stderr
    assert len(ids(outcome.stdout)) == 4


def test_bad_list_options_are_exit_2(llem: Llem, results: Path) -> None:
    cases = {
        ("--since", "last week"): (
            "error: --since 'last week': give a date (2026-11-01), a date and time "
            "(2026-11-01T14:30) or an age (7d, 12h, 30m) within the years 1 to 9999\n"
        ),
        ("--sort", "speed"): (
            "error: unknown sort key 'speed': choose one of created, model, backend, status, "
            "duration, energy, tokens_per_j, throughput, ttft, e2e\n"
        ),
        ("--status", "done"): (
            "error: unknown status 'done': choose from running, completed, failed, incomplete, "
            "staged\n"
        ),
    }
    for args, message in cases.items():
        outcome = llem("results", "list", "--db", str(results / "llem.db"), *args)
        assert (outcome.exit_code, outcome.stderr) == (2, message)

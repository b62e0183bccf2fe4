"""The results store on real SQLite files: indexing, idempotence, queries."""

import dataclasses
import logging
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from llem_schema import ExperimentResult, LatencyStats, MeasurementWarning, ResultFormatError
from llem_schema.testing import EXAMPLE_START, example_config
from llem_store import (
    DuplicateResultError,
    ExperimentFilter,
    IngestOutcome,
    ResultStore,
    RunTimes,
    StoreLookupError,
)
from llem_store.errors import UnknownExperimentError

# the conftest fixture: (experiment_id, *, model, hours, root, warnings)
MakeResult = Callable[..., Path]


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def test_an_ingested_result_is_listed_with_its_metrics_requests_and_warnings(
    tmp_path: Path, make_result: MakeResult
) -> None:
    directory = make_result("exp-a")
    result = ExperimentResult.from_json(directory)
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        assert store.ingest(directory) is IngestOutcome.ADDED
        summary = store.get("exp-a")
        warnings = store.warnings("exp-a")
        config = store.config("exp-a")
    assert summary.status == "completed"
    assert summary.result_path == directory.resolve()
    assert summary.created_at == result.start_time
    assert (summary.model, summary.backend, summary.precision) == ("llem/tiny", "pytorch", "fp16")
    assert (summary.batch_size, summary.num_processes, summary.requests) == (4, 2, 12)
    assert summary.output_tokens == result.output_tokens
    assert summary.total_energy_j == result.total_energy_j
    assert summary.output_tokens_per_j == result.efficiency.output_tokens_per_j
    assert result.latency.ttft is not None
    assert summary.ttft_median_ms == result.latency.ttft.median_ms
    assert summary.warning_count == len(warnings) == 1
    (warning,) = result.measurement_warnings
    assert warnings == [("measurement", "few_prompts", warning.message)]
    assert warning.message.startswith("only 6 prompts were measured")
    assert config == result.effective_config
    db = tmp_path / "results" / "llem.db"
    # the path is kept relative to the store, so the whole tree can move
    assert rows(db, "SELECT result_path FROM experiments") == [(directory.name,)]
    assert rows(db, "SELECT count(*) FROM requests") == [(12,)]


def test_a_note_of_aggregation_is_one_warning_not_two(
    tmp_path: Path, template_result: ExperimentResult
) -> None:
    # aggregation's notes are in measurement_warnings and in aggregation.warnings: one each
    note = MeasurementWarning.of(
        "incomplete",
        "incomplete: processes 2 of 3 have no result; the figures cover the processes that "
        "finished",
        processes="2",
    )
    result = template_result.model_copy(
        update={
            "experiment_id": "exp-noted",
            "measurement_warnings": [*template_result.measurement_warnings, note],
            "aggregation": template_result.aggregation.model_copy(update={"warnings": [note]}),
        }
    )
    directory = ExperimentResult.model_validate(result.model_dump()).save(tmp_path / "results")
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(directory)
        summary = store.get("exp-noted")
        warnings = store.warnings("exp-noted")
    assert summary.warning_count == len(result.measurement_warnings) == 2
    assert [(source, code) for source, code, _ in warnings] == [
        ("measurement", "few_prompts"),
        ("aggregation", "incomplete"),
    ]


def test_querying_loads_neither_pydantic_nor_pyarrow(
    tmp_path: Path, make_result: MakeResult
) -> None:
    # `llem results list` must start fast: opening the store and its queries stay light
    directory = make_result("exp-a")
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(directory)
    code = (
        "import sys\n"
        "from llem_store import ExperimentFilter, ResultStore\n"
        f"with ResultStore({str(tmp_path / 'results' / 'llem.db')!r}, create=False) as store:\n"
        "    rows = store.list_experiments(ExperimentFilter(statuses=None), sort='energy')\n"
        "    store.count_experiments(); store.get('exp'); store.studies(); store.running()\n"
        "    store.warnings('exp-a'); store.config('exp-a'); store.file_state('exp-a')\n"
        "print(len(rows), sorted(m for m in ('pydantic', 'pyarrow', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "1 []"


def test_request_statistics_follow_the_metric_definitions(
    tmp_path: Path, make_result: MakeResult
) -> None:
    directory = make_result("exp-a")
    result = ExperimentResult.from_json(directory)
    requests = [r for p in result.process_results for r in p.requests]
    with ResultStore(tmp_path / "llem.db") as store:
        store.ingest(directory)
        stats = store.request_stats("exp-a")
    assert stats["ttft_ms"] == result.latency.ttft
    assert stats["e2e_ms"] == result.latency.e2e
    assert stats["tpot_ms"] == LatencyStats.from_values(
        r.tpot_ms for r in requests if r.tpot_ms is not None
    )
    assert stats["itl_max_ms"] == LatencyStats.from_values(
        max(r.itl_ms) for r in requests if r.itl_ms
    )


def test_ingesting_the_same_result_twice_changes_nothing(
    tmp_path: Path, make_result: MakeResult
) -> None:
    directory = make_result("exp-a")
    db = tmp_path / "llem.db"
    with ResultStore(db) as store:
        store.ingest(directory)
        before = rows(db, "SELECT * FROM experiments")
        assert store.ingest(directory) is IngestOutcome.UNCHANGED
        assert store.ingest(directory / "result.json") is IngestOutcome.UNCHANGED
    assert rows(db, "SELECT * FROM experiments") == before
    assert rows(db, "SELECT count(*) FROM requests") == [(12,)]


def test_a_rewritten_result_replaces_its_rows(tmp_path: Path, make_result: MakeResult) -> None:
    directory = make_result("exp-a")
    db = tmp_path / "llem.db"
    with ResultStore(db) as store:
        store.ingest(directory)
        result = ExperimentResult.from_json(directory)
        rewritten = result.model_copy(
            update={
                "measurement_warnings": [
                    MeasurementWarning(code="short_window", message="a"),
                    MeasurementWarning(code="ecc_off", message="b", figures={"device": "GPU-B"}),
                ]
            }
        )
        (directory / "result.json").write_text(rewritten.model_dump_json())
        assert store.ingest(directory) is IngestOutcome.UPDATED
        assert store.warnings("exp-a") == [
            ("measurement", "short_window", "a"),
            ("measurement", "ecc_off", "b"),
        ]
        assert (
            store.count_experiments(ExperimentFilter(warning="few_prompts")) == 0
        )  # the old rows are gone
        assert store.count_experiments(ExperimentFilter(warning="ecc_off")) == 1
    assert rows(db, "SELECT count(*) FROM requests") == [(12,)]
    assert rows(db, "SELECT count(*) FROM experiments") == [(1,)]


def test_a_moved_result_is_repointed_and_a_second_copy_is_refused(
    tmp_path: Path, make_result: MakeResult
) -> None:
    directory = make_result("exp-a")
    db = tmp_path / "llem.db"
    with ResultStore(db) as store:
        store.ingest(directory)
        copy = tmp_path / "elsewhere" / directory.name
        shutil.copytree(directory, copy)
        with pytest.raises(DuplicateResultError) as caught:
            store.ingest(copy)
        assert str(caught.value) == (
            f"{copy.absolute()}: experiment exp-a is already indexed from "
            f"{directory.resolve()}; this copy is not indexed (remove one of them, or re-index "
            "after moving it)"
        )
        shutil.rmtree(directory)
        assert store.ingest(copy) is IngestOutcome.UPDATED
        assert store.get("exp-a").result_path == copy.resolve()
    assert rows(db, "SELECT count(*) FROM requests") == [(12,)]


def test_a_store_moved_with_its_results_still_finds_them(
    tmp_path: Path, make_result: MakeResult
) -> None:
    directory = make_result("exp-a")
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(directory)
    moved = tmp_path / "archive" / "results"
    shutil.move(tmp_path / "results", moved)
    with ResultStore(moved / "llem.db", create=False) as store:
        path = store.get("exp-a").result_path
        assert path == moved.resolve() / directory.name
        assert store.check().ok


def test_import_tree_indexes_every_result_and_names_what_it_skips(
    tmp_path: Path, make_result: MakeResult, caplog: pytest.LogCaptureFixture
) -> None:
    results = tmp_path / "results"
    made = [make_result(f"exp-{index}", hours=index) for index in range(3)]
    nested = make_result("exp-nested", root=results / "study-1")
    corrupt = results / "corrupt_run"
    corrupt.mkdir()
    (corrupt / "result.json").write_text('{"schema_version": "1.0", "model": ')
    (results / "interrupted_save").mkdir()  # a killed save: no result.json
    (results / "interrupted_save" / ".result.json.123.tmp").write_text("{")
    staged = results / ".staging" / "exp-staged"
    staged.mkdir(parents=True)
    shutil.copy(nested / "result.json", staged / "result.json")
    seen: list[tuple[str, int, int]] = []
    with caplog.at_level(logging.WARNING), ResultStore(results / "llem.db") as store:
        report = store.import_tree(results, on_result=lambda d, i, n: seen.append((d.name, i, n)))
        again = store.import_tree(results)
        ids = [s.experiment_id for s in store.list_experiments(sort="created", descending=False)]
    assert sorted(report.added) == sorted(d.absolute() for d in [*made, nested])
    assert report.indexed == 4
    assert not report.updated
    assert not report.unchanged
    assert [path for path, _ in report.skipped] == [corrupt]
    assert "result.json" in report.skipped[0][1]
    assert f"skipped {corrupt}" in caplog.text
    assert [n for _, _, n in seen] == [5] * 5
    assert [i for _, i, _ in seen] == [1, 2, 3, 4, 5]
    assert len(again.unchanged) == 4
    assert not again.added
    assert ids == ["exp-0", "exp-nested", "exp-1", "exp-2"]  # equal start times: by id


def test_a_store_rebuilt_from_the_directories_equals_the_original(
    tmp_path: Path, make_result: MakeResult
) -> None:
    for index in range(4):
        make_result(f"exp-{index}", hours=index, model=f"org/model-{index % 2}")
    results = tmp_path / "results"
    with ResultStore(results / "llem.db") as store:
        store.import_tree(results)
        original = store.list_experiments()
    for suffix in ("", "-wal", "-shm"):
        (results / f"llem.db{suffix}").unlink(missing_ok=True)
    with ResultStore(results / "llem.db") as store:
        store.import_tree(results)
        assert store.list_experiments() == original


@pytest.fixture
def populated(tmp_path: Path, make_result: MakeResult) -> ResultStore:
    """Six experiments: two models, start times one hour apart, one failed, one running."""
    for index in range(4):
        make_result(f"exp-{index}", hours=index, model=("org/small" if index < 2 else "org/big"))
    store = ResultStore(tmp_path / "results" / "llem.db")
    store.import_tree(tmp_path / "results")
    store.mark_running("exp-running", example_config(model="org/big"), created=EXAMPLE_START)
    store.mark_running("exp-failed", example_config(), created=EXAMPLE_START)
    store.mark_failed("exp-failed", "process 1 failed: out of memory")
    return store


def test_list_filters_sorts_and_pages(populated: ResultStore) -> None:
    def ids(
        *,
        sort: str = "created",
        descending: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        **filters: Any,
    ) -> list[str]:
        where = ExperimentFilter(**filters)
        page = populated.list_experiments(
            where, sort=sort, descending=descending, limit=limit, offset=offset
        )
        return [s.experiment_id for s in page]

    assert ids() == ["exp-3", "exp-2", "exp-1", "exp-0"]  # completed, newest first
    assert ids(descending=False) == ["exp-0", "exp-1", "exp-2", "exp-3"]
    assert ids(model="SMALL") == ["exp-1", "exp-0"]  # a case-insensitive part of the name
    assert ids(model="org/big", statuses=None) == ["exp-3", "exp-2", "exp-running"]
    assert ids(statuses=["failed"]) == ["exp-failed"]
    assert ids(backend="torch", since=datetime(2026, 11, 22, 15, 3, 5, tzinfo=UTC)) == [
        "exp-3",
        "exp-2",
        "exp-1",
    ]
    assert ids(until=datetime(2026, 11, 22, 15, 3, 5, tzinfo=UTC)) == ["exp-0"]
    assert ids(limit=2) == ["exp-3", "exp-2"]
    assert ids(limit=2, offset=2) == ["exp-1", "exp-0"]
    assert ids(model="%") == []  # LIKE wildcards are taken literally
    assert populated.count_experiments() == 4
    assert populated.count_experiments(ExperimentFilter(statuses=None)) == 6
    efficiency = populated.get("exp-0").output_tokens_per_j
    assert efficiency is not None
    assert len(ids(min_output_tokens_per_j=efficiency)) == 4
    assert ids(min_output_tokens_per_j=efficiency * 1.01) == []
    failed = populated.get("exp-failed")
    assert failed.error == "process 1 failed: out of memory"
    assert failed.result_path is None
    # missing values sort last whatever the direction
    by_energy = ids(statuses=None, sort="energy", descending=False)
    assert by_energy[-2:] == ["exp-failed", "exp-running"]
    assert ids(statuses=None, sort="energy")[-2:] == ["exp-running", "exp-failed"]


def test_listed_dicts_are_the_summaries_json_dicts(populated: ResultStore) -> None:
    # list_experiment_dicts skips the summaries: the same dicts, keys in the same order
    pages: list[tuple[ExperimentFilter, str, bool | None, int | None, int]] = [
        (ExperimentFilter(), "created", None, None, 0),
        (ExperimentFilter(statuses=None), "energy", False, None, 0),  # running and failed too
        (ExperimentFilter(statuses=None, model="big"), "model", True, 2, 1),
    ]
    for where, sort, descending, limit, offset in pages:
        dicts = populated.list_experiment_dicts(
            where, sort=sort, descending=descending, limit=limit, offset=offset
        )
        summaries = populated.list_experiments(
            where, sort=sort, descending=descending, limit=limit, offset=offset
        )
        assert dicts
        assert [list(d.items()) for d in dicts] == [
            list(s.to_json_dict().items()) for s in summaries
        ]


def test_a_summarys_json_dict_is_asdict_with_times_and_path_as_text(
    populated: ResultStore,
) -> None:
    summaries = populated.list_experiments(ExperimentFilter(statuses=None))
    assert {s.result_path is None for s in summaries} == {True, False}
    assert {s.end_time is None for s in summaries} == {True, False}
    for summary in summaries:
        expected = dataclasses.asdict(summary)
        for key in ("created_at", "end_time"):
            if expected[key] is not None:
                expected[key] = expected[key].isoformat()
        if expected["result_path"] is not None:
            expected["result_path"] = str(expected["result_path"])
        assert list(summary.to_json_dict().items()) == list(expected.items())


def test_a_bad_argument_is_a_value_error_that_says_what_to_give(populated: ResultStore) -> None:
    def message(call: Callable[[], object]) -> str:
        with pytest.raises(ValueError) as caught:  # noqa: PT011 (the whole message is checked)
            call()
        return str(caught.value)

    assert message(lambda: populated.list_experiments(sort="joules")) == (
        "unknown sort key 'joules': choose one of created, model, backend, status, duration, "
        "energy, tokens_per_j, throughput, ttft, e2e"
    )
    assert message(lambda: ExperimentFilter(statuses=["done"])) == (  # type: ignore[list-item]
        "unknown status 'done': choose from running, completed, failed, incomplete"
    )
    assert message(lambda: populated.list_experiments(limit=-1)) == (
        "limit and offset must not be negative"
    )
    assert message(lambda: populated.compare([])) == "compare needs at least one experiment id"


def short_window(duration_s: float, *, process: int | None = None) -> MeasurementWarning:
    """A short-window warning as a process raises it (named by aggregation when ``process``)."""
    message = (
        f"measurement window was {duration_s:.1f} s, shorter than 60 s: start/stop effects "
        "weigh on the energy figures; measure more prompts or more tokens so the window "
        "lasts at least a minute"
    )
    figures: dict[str, JsonValue] = {"duration_s": duration_s, "min_window_s": 60.0}
    if process is not None:
        message = f"process {process}: {message}"
        figures["process"] = process
    return MeasurementWarning(code="short_window", message=message, figures=figures)


def test_list_and_count_filter_by_a_warning_code_not_by_its_text(
    tmp_path: Path, make_result: MakeResult
) -> None:
    make_result("exp-short", warnings=[short_window(10.0)])
    make_result(
        "exp-short-twice",
        hours=1,
        model="org/big",
        warnings=[short_window(10.0, process=0), short_window(10.3, process=1)],
    )
    # the wording of a short window, but not its code: the filter must not match it
    worded = MeasurementWarning(code="unclassified", message="measurement window was short")
    make_result("exp-worded", hours=2, warnings=[worded])
    make_result("exp-few", hours=3)  # the template's few_prompts warning
    make_result("exp-none", hours=4, warnings=[])
    results = tmp_path / "results"
    with ResultStore(results / "llem.db") as store:
        store.import_tree(results)

        def ids(**filters: Any) -> list[str]:
            return [s.experiment_id for s in store.list_experiments(ExperimentFilter(**filters))]

        assert ids(warning="short_window") == ["exp-short-twice", "exp-short"]  # once each
        assert store.count_experiments(ExperimentFilter(warning="short_window")) == 2
        assert ids(warning="few_prompts") == ["exp-few"]
        assert store.count_experiments(ExperimentFilter(warning="few_prompts")) == 1
        assert ids(warning="unclassified") == ["exp-worded"]
        # with the other filters, every one applies
        assert ids(warning="short_window", model="org/big") == ["exp-short-twice"]
        assert (
            store.count_experiments(ExperimentFilter(warning="short_window", model="org/big")) == 1
        )
        page = store.list_experiments(ExperimentFilter(warning="short_window"), limit=1, offset=1)
        assert [s.experiment_id for s in page] == ["exp-short"]
        assert ids(warning="thermal_drift") == []
        assert store.count_experiments(ExperimentFilter(warning="thermal_drift")) == 0
        assert len(ids()) == store.count_experiments() == 5
        assert [code for _, code, _ in store.warnings("exp-short-twice")] == [
            "short_window",
            "short_window",
        ]


def test_get_accepts_a_unique_prefix_and_says_what_is_wrong_otherwise(
    populated: ResultStore,
) -> None:
    assert populated.get("exp-r").experiment_id == "exp-running"
    with pytest.raises(StoreLookupError) as caught:
        populated.get("exp-")
    assert str(caught.value).startswith("'exp-' matches several experiments (exp-0, exp-1, ")
    assert str(caught.value).endswith(", ...): give more of the id")
    with pytest.raises(UnknownExperimentError) as caught:
        populated.get("nope")
    assert str(caught.value) == f"no experiment 'nope' in {populated.path}"
    assert caught.value.experiment_id == "nope"
    assert isinstance(caught.value, StoreLookupError)


def test_get_accepts_a_result_directory_which_wins_over_a_beginning_of_an_id(
    tmp_path: Path, make_result: MakeResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``llem run`` prints opens that experiment: its directory, its ``result.json``, the
    name alone from inside the results directory; an id beginning never wins over it."""
    first = make_result("run")  # a name that begins another experiment's id
    second = make_result("run-2")
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(first)
        store.ingest(second)
        assert store.get(str(first)).experiment_id == "run"
        assert store.get(str(second / "result.json")).experiment_id == "run-2"
        monkeypatch.chdir(tmp_path)
        assert store.get("results/run-2").experiment_id == "run-2"
        moved = second.rename(tmp_path / "results" / "ru")  # a directory named like a prefix
        with pytest.raises(UnknownExperimentError) as caught:
            store.get("results/ru")  # "run-2" was indexed from where it was; not from here
    assert str(caught.value) == (
        f"results/ru is not indexed in {store.path} (`llem results import results/ru` indexes it)"
    )
    assert moved.is_dir()


def test_compare_returns_the_experiments_in_the_order_asked(populated: ResultStore) -> None:
    assert [s.experiment_id for s in populated.compare(["exp-2", "exp-0", "exp-3"])] == [
        "exp-2",
        "exp-0",
        "exp-3",
    ]


def test_a_running_experiment_becomes_completed_when_its_result_is_indexed(
    tmp_path: Path, make_result: MakeResult
) -> None:
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.mark_running("exp-a", example_config(), created=datetime.now(UTC))
        assert store.get("exp-a").status == "running"
        store.mark_running("exp-a", example_config())  # a repeat changes nothing
        assert store.ingest(make_result("exp-a")) is IngestOutcome.UPDATED
        summary = store.get("exp-a")
        store.mark_failed("exp-a", "too late")  # only a running experiment can fail
        assert store.get("exp-a") == summary
    assert summary.status == "completed"
    assert summary.requests == 12


def test_an_incomplete_result_is_indexed_as_incomplete(
    tmp_path: Path, template_result: ExperimentResult
) -> None:
    aggregation = template_result.aggregation.model_copy(
        update={"expected_processes": 3, "complete": False, "missing_processes": [2]}
    )
    result = template_result.model_copy(
        update={"experiment_id": "exp-partial", "aggregation": aggregation}
    )
    directory = ExperimentResult.model_validate(result.model_dump()).save(tmp_path)
    with ResultStore(tmp_path / "llem.db") as store:
        store.ingest(directory)
        assert [s.experiment_id for s in store.list_experiments()] == []
        summary = store.get("exp-partial")
    assert (summary.status, summary.num_processes) == ("incomplete", 3)


def test_studies_link_their_experiments_through_running_to_indexed(
    tmp_path: Path, make_result: MakeResult
) -> None:
    results = tmp_path / "results"
    with ResultStore(results / "llem.db") as store:
        store.register_study(
            "sweep-1-id", "sweep-1", design_hash="abc", study_dir=results / "sweep-1"
        )
        store.mark_running("exp-a", example_config(), study_id="sweep-1-id")
        store.ingest(make_result("exp-a", root=results / "sweep-1"))
        store.ingest(make_result("exp-b", root=results / "sweep-1", hours=1))
        store.link_to_study("exp-b", "sweep-1-id")
        store.ingest(make_result("exp-other", hours=2))
        by_name = [
            s.experiment_id for s in store.list_experiments(ExperimentFilter(study="sweep-1"))
        ]
        by_id = [
            s.experiment_id for s in store.list_experiments(ExperimentFilter(study="sweep-1-id"))
        ]
        (study,) = store.studies()
        assert store.count_experiments(ExperimentFilter(study="nope")) == 0
        with pytest.raises(StoreLookupError) as caught:
            store.link_to_study("exp-missing", "sweep-1-id")
        assert str(caught.value) == f"no experiment 'exp-missing' in {store.path}"
    assert by_name == by_id == ["exp-b", "exp-a"]  # exp-a kept its study when its result came
    assert (study.study_id, study.name, study.design_hash) == ("sweep-1-id", "sweep-1", "abc")
    assert study.study_dir == results.resolve() / "sweep-1"
    assert (study.experiments, study.with_results) == (2, 2)


def test_typical_durations_are_medians_of_completed_experiments(
    populated: ResultStore,
) -> None:
    (config_hash,) = {s.config_hash for s in populated.list_experiments()}
    duration = populated.get("exp-0").duration_s
    assert duration is not None
    # ids without a launch time ("exp-0") count their window as the whole run
    assert populated.typical_durations([config_hash, "unknown"]) == {
        config_hash: RunTimes(duration, duration)
    }


def test_a_whole_run_counts_from_the_launch_time_its_id_carries(
    tmp_path: Path, make_result: MakeResult
) -> None:
    """Model loading, baseline and warmup are in a study's estimate: an id llem made carries
    its launch time, 30 s before this template's window opened (EXAMPLE_START)."""
    launched = (EXAMPLE_START - timedelta(seconds=30)).strftime("%Y-%m-%dT%H-%M-%S")
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(make_result(f"tiny_pytorch_{launched}_0a1b2c"))
        (summary,) = store.list_experiments()
        times = store.typical_durations([summary.config_hash])[summary.config_hash]
    assert summary.duration_s is not None
    assert times.window_s == summary.duration_s
    assert times.whole_s == pytest.approx(30.0 + summary.duration_s)


def test_a_result_that_cannot_be_indexed_is_named_and_skipped_by_import_tree(
    tmp_path: Path, make_result: MakeResult, template_result: ExperimentResult
) -> None:
    good = make_result("exp-good")
    process = template_result.process_results[0]
    twice = process.model_copy(update={"requests": [process.requests[0]] * 2})
    bad = template_result.model_copy(
        update={
            "experiment_id": "exp-bad",
            "process_results": [twice, *template_result.process_results[1:]],
        }
    ).save(tmp_path / "results")
    db = tmp_path / "results" / "llem.db"
    with ResultStore(db) as store:
        with pytest.raises(ResultFormatError) as caught:
            store.ingest(bad)
        assert str(caught.value) == (
            f"{bad.absolute()}: two requests of process and request index (0, 0) in one "
            "result; not indexed"
        )
        report = store.import_tree(tmp_path / "results")
    assert report.added == [good.absolute()]
    assert report.skipped == [(bad, str(caught.value))]
    assert rows(db, "SELECT DISTINCT experiment_id FROM requests") == [("exp-good",)]

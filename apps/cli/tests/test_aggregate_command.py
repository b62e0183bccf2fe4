"""``llem aggregate``: a staged run is saved and indexed; an aggregated one is refused
without ``--force``, and with it aggregated again in place and re-indexed."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from llem_persistence import StagingRepository, aggregate_results, write_timeseries
from llem_schema import ExperimentResult, PowerSample
from llem_schema.testing import example_config, example_raw_result, example_result
from llem_store import ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


def stage(results: Path, experiment_id: str, *, finished: int, launched: int) -> None:
    """Stage ``finished`` of ``launched`` processes of a run, as workers would."""
    config = example_config()
    staging = StagingRepository(results)
    staging.begin(config, experiment_id, launched)
    for index in range(finished):
        raw = example_raw_result(
            config=config, process_index=index, num_processes=launched, seed=index
        )
        staging.save_raw(experiment_id, raw.model_copy(update={"experiment_id": experiment_id}))


def test_a_staged_run_is_saved_and_indexed(llem: Llem, tmp_path: Path) -> None:
    results = tmp_path / "results"
    stage(results, "run_a", finished=1, launched=2)
    outcome = llem("aggregate", "run_a", "--output", str(results))
    assert outcome.exit_code == 0, outcome.stderr
    (directory,) = [p for p in results.iterdir() if p.is_dir() and p.name != ".staging"]
    assert outcome.stdout == f"run_a: saved {directory} (incomplete, missing processes 1)\n"
    assert not (results / ".staging" / "run_a").exists()
    with ResultStore(results / "llem.db", create=False) as store:
        summary = store.get("run_a")
    assert summary.status == "incomplete"
    assert summary.requests == 8
    assert summary.result_path == directory.absolute()


def test_an_unwritable_store_does_not_lose_the_recovered_result(llem: Llem, tmp_path: Path) -> None:
    results = tmp_path / "results"
    stage(results, "run_a", finished=2, launched=2)
    db = tmp_path / "notes.txt"
    db.write_text("not a database")
    outcome = llem("aggregate", "run_a", "--output", str(results), "--db", str(db))
    assert outcome.exit_code == 0
    (directory,) = [p for p in results.iterdir() if p.is_dir() and p.name != ".staging"]
    assert outcome.stdout == f"run_a: saved {directory} (complete)\n"
    assert outcome.stderr.startswith(
        f"warning: result saved at {directory} but not indexed in {db} ("
    )
    assert outcome.stderr.endswith(
        f"); re-index with `llem results import {directory} --db {db}`\n"
    )


def save_indexed(results: Path) -> tuple[Path, ExperimentResult]:
    """A saved result with a timeseries sidecar whose result.json carries a stale warning
    (as if an older llem had aggregated it), indexed as it is."""
    config = example_config()
    raws = [
        example_raw_result(config=config, process_index=i, num_processes=2, seed=i)
        for i in range(2)
    ]
    sidecar = results / "samples.parquet"
    results.mkdir(parents=True)
    samples = [
        PowerSample(timestamp_s=t, gpu_index=0, gpu_power_w=100.0, gpu_temperature_c=40.0)
        for t in (0.0, 0.1)
    ]
    write_timeseries(samples, sidecar)
    result = example_result(raws, config=config, timeseries="timeseries.parquet")
    directory = result.save(results, timeseries_source=sidecar)
    document = json.loads((directory / "result.json").read_text())
    document["measurement_warnings"] = [
        {"code": "unclassified", "message": "stale warning from an old aggregation"}
    ]
    (directory / "result.json").write_text(json.dumps(document, indent=2))
    with ResultStore(results / "llem.db") as store:
        store.ingest(directory)
    return directory, ExperimentResult.from_json(directory)


def test_an_aggregated_id_needs_force(llem: Llem, tmp_path: Path) -> None:
    results = tmp_path / "results"
    directory, result = save_indexed(results)
    before = (directory / "result.json").read_bytes()
    outcome = llem("aggregate", result.experiment_id, "--output", str(results))
    assert (outcome.exit_code, outcome.stderr) == (
        2,
        f"error: {result.experiment_id} is already aggregated ({directory.absolute()}); --force "
        "aggregates it again from its process results\n",
    )
    assert (directory / "result.json").read_bytes() == before


def test_force_aggregates_again_in_place_and_reindexes(llem: Llem, tmp_path: Path) -> None:
    results = tmp_path / "results"
    directory, old = save_indexed(results)
    with ResultStore(results / "llem.db") as store:
        assert store.warnings(old.experiment_id) == [
            ("measurement", "unclassified", "stale warning from an old aggregation")
        ]

    outcome = llem("aggregate", old.experiment_id, "--force", "--output", str(results))
    assert outcome.exit_code == 0, outcome.stderr
    assert (
        outcome.stdout
        == f"{old.experiment_id}: aggregated again into {directory.absolute()} (complete)\n"
    )

    expected = aggregate_results(
        old.process_results,
        effective_config=old.effective_config,
        expected_processes=old.aggregation.expected_processes,
        environment_snapshot=old.environment_snapshot,
        timeseries=old.timeseries,
    )
    assert ExperimentResult.from_json(directory) == expected
    assert expected.timeseries == "timeseries.parquet"
    assert (directory / "timeseries.parquet").is_file()  # the sidecar stays
    with ResultStore(results / "llem.db") as store:
        assert store.warnings(old.experiment_id) == []
        assert store.check().ok  # indexed from the new file
        assert store.get(old.experiment_id).warning_count == 0


def test_all_with_force_covers_staged_and_indexed(llem: Llem, tmp_path: Path) -> None:
    results = tmp_path / "results"
    directory, old = save_indexed(results)
    stage(results, "run_b", finished=1, launched=1)
    outcome = llem("aggregate", "--all", "--force", "--output", str(results))
    assert outcome.exit_code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("run_b: saved ")
    assert (
        lines[1] == f"{old.experiment_id}: aggregated again into {directory.absolute()} (complete)"
    )
    with ResultStore(results / "llem.db") as store:
        assert sorted(s.experiment_id for s in store.list_experiments()) == sorted(
            ["run_b", old.experiment_id]
        )


def test_all_with_nothing_staged(llem: Llem, tmp_path: Path) -> None:
    outcome = llem("aggregate", "--all", "--output", str(tmp_path))
    assert (outcome.exit_code, outcome.stdout) == (
        0,
        f"nothing staged in {tmp_path / '.staging'}\n",
    )


def test_all_recovers_what_it_can_and_leaves_live_runs_alone(llem: Llem, tmp_path: Path) -> None:
    results = tmp_path / "results"
    stage(results, "run_empty", finished=0, launched=2)  # nothing finished: cannot be saved
    stage(results, "run_half", finished=1, launched=2)
    stage(results, "run_live", finished=1, launched=2)
    staging = StagingRepository(results)
    with staging.running("run_live"):  # a run still going, as `llem run` holds it
        assert staging.is_running("run_live")
        outcome = llem("aggregate", "--all", "--output", str(results))
        named = llem("aggregate", "run_live", "--output", str(results))
    assert not staging.is_running("run_live")
    assert outcome.exit_code == 0, outcome.stderr
    assert "run_live: still running; left alone\n" in outcome.stdout
    assert "run_half: saved " in outcome.stdout
    # nothing finished and no process runs it: said once, not a failure of every later call
    assert (
        "run_empty: no process finished; nothing to save (remove its staging with "
        "`llem aggregate run_empty --discard`)\n"
    ) in outcome.stdout
    assert (named.exit_code, named.stderr) == (
        2,
        "error: run_live is still running; aggregate it when its run has ended\n",
    )
    assert sorted(staging.list_staged()) == ["run_empty", "run_live"]

"""What a user who broke their results tree gets from the store commands: a rebuilt index
that keeps its studies, checks that find a truncated or deleted timeseries, exports that
pass over a corrupt result, and deletes and prunes that stay inside the results directory."""

import io
import json
import shutil
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from llem_persistence import write_timeseries
from llem_schema import ExperimentResult, PowerSample, StudyManifest
from llem_store import ExperimentFilter, ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


def _run(llem: Llem, *args: str) -> tuple[int, str, str]:
    outcome = llem(*args)
    return outcome.exit_code, outcome.stdout, outcome.stderr


def _manifest(study_dir: Path, ids: list[str], results_dir: Path) -> None:
    """A finished study's manifest naming ``ids`` as its completed runs."""
    entries = [
        {
            "run_index": index,
            "point_index": index,
            "cycle": 0,
            "config_hash": "0" * 16,
            "overrides": {"pytorch.batch_size": index + 1},
            "status": "completed",
            "experiment_id": experiment_id,
            "result_path": next(results_dir.glob(f"*{experiment_id}*")).name
            if any(results_dir.glob(f"*{experiment_id}*"))
            else "missing",
        }
        for index, experiment_id in enumerate(ids)
    ]
    now = datetime(2026, 11, 30, tzinfo=UTC)
    manifest = StudyManifest.model_validate(
        {
            "study_id": "sweep_2026-11-30",
            "study_name": "sweep",
            "design_hash": "1" * 16,
            "status": "completed",
            "created_at": now,
            "updated_at": now,
            "entries": entries,
        }
    )
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "manifest.json").write_text(manifest.model_dump_json(indent=2))


def test_a_rebuilt_index_keeps_which_runs_belong_to_which_study(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    study_dir = results / "sweep_2026-11-30"
    study_dir.mkdir()
    with ResultStore(results / "llem.db") as store:
        for experiment_id in ("exp_1", "exp_2"):  # a study keeps its runs in its directory
            summary = store.get(experiment_id)
            assert summary.result_path is not None
            shutil.move(summary.result_path, study_dir / summary.result_path.name)
    _manifest(study_dir, ["exp_1", "exp_2"], study_dir)
    (results / "llem.db").unlink()  # the index is lost, the result directories are not

    code, out, err = _run(llem, "results", "import", str(results), "--db", str(results / "llem.db"))
    assert code == 0, err
    assert out.splitlines()[-1] == "restored 1 study from their manifests (2 experiments linked)"
    code, out, _ = _run(
        llem, "results", "list", "--study", "sweep", "--json", "--db", str(results / "llem.db")
    )
    assert code == 0
    assert sorted(row["experiment_id"] for row in json.loads(out)) == ["exp_1", "exp_2"]
    target = tmp_path / "sweep.csv"
    code, out, err = _run(
        llem,
        "results",
        "export",
        "--study",
        "sweep",
        "-o",
        str(target),
        "--db",
        str(results / "llem.db"),
    )
    assert (code, out) == (0, f"exported 2 experiments to {target} (csv)\n"), err
    code, _, err = _run(
        llem, "results", "list", "--study", "nope", "--db", str(results / "llem.db")
    )
    assert (code, err) == (2, f"error: no study 'nope' in {results / 'llem.db'}\n")


def _with_timeseries(results: Path, experiment_id: str) -> Path:
    """Give an indexed result a timeseries sidecar of every GPU it integrated power for."""
    with ResultStore(results / "llem.db") as store:
        directory = store.get(experiment_id).result_path
    assert directory is not None
    result = ExperimentResult.from_json(directory)
    gpus = {
        e.device_uuid
        for p in result.process_results
        for e in p.energy
        if e.domain == "gpu" and e.integrated_energy_j is not None
    }
    samples = [
        PowerSample(timestamp_s=t * 0.1, gpu_index=g, gpu_power_w=100.0 + g, gpu_temperature_c=40.0)
        for t in range(20)
        for g in range(len(gpus))
    ]
    parquet = results.parent / "ts.parquet"
    assert write_timeseries(samples, parquet)
    shutil.rmtree(directory)
    saved = result.model_copy(update={"timeseries": None}).save(results, timeseries_source=parquet)
    with ResultStore(results / "llem.db") as store:
        store.ingest(saved)
    return saved


def test_check_reads_every_timeseries_back(llem: Llem, results: Path) -> None:
    db = str(results / "llem.db")
    truncated = _with_timeseries(results, "exp_0")
    deleted = _with_timeseries(results, "exp_2")
    assert _run(llem, "db", "check", "--db", db)[:2] == (0, "ok: 4 experiments checked\n")

    sidecar = truncated / ExperimentResult.from_json(truncated).timeseries  # type: ignore[operator]
    sidecar.write_bytes(sidecar.read_bytes()[:100])
    gone = deleted / ExperimentResult.from_json(deleted).timeseries  # type: ignore[operator]
    gone.unlink()

    code, out, err = _run(llem, "db", "check", "--db", db)
    assert code == 1
    first, second = out.splitlines()
    assert first.startswith(f"exp_0: {sidecar}: not a readable timeseries: ")
    assert second == f"exp_2: {gone}: no such timeseries file"
    assert err.startswith(f"2 problems in {db} (4 experiments checked)")


def test_export_all_passes_over_a_corrupt_result_and_exits_1(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    with ResultStore(results / "llem.db") as store:
        broken = store.get("exp_1").result_path
    assert broken is not None
    (broken / "result.json").write_text('{"schema_version": "1.3", "experiment_id": ')
    target = tmp_path / "all.csv"
    code, out, err = _run(
        llem, "results", "export", "--all", "-o", str(target), "--db", str(results / "llem.db")
    )
    assert code == 1
    assert out == f"exported 3 experiments to {target} (csv)\n"
    first, last = err.splitlines()
    assert first.startswith(f"warning: skipped {broken / 'result.json'}: ")
    assert last == "1 skipped; the others were exported"
    rows = target.read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["exp_0", "exp_2", "exp_3"]


def test_delete_removes_the_directory_and_the_rows_and_never_leaves_the_results_dir(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    db = str(results / "llem.db")
    with ResultStore(results / "llem.db") as store:
        directory = store.get("exp_0").result_path
        outside = store.get("exp_3").result_path
    assert directory is not None
    assert outside is not None
    code, out, err = _run(llem, "results", "delete", "exp_0", "--yes", "--db", db)
    assert (code, out) == (0, f"deleted exp_0 ({directory})\n"), err
    assert not directory.exists()

    # an id that tries to leave the results directory names nothing
    code, _, err = _run(llem, "results", "delete", "../../etc", "--yes", "--db", db)
    assert (code, err) == (
        2,
        f"error: no experiment '../../etc' in {db}; see `llem results list --all`\n",
    )
    # a result indexed from outside the results directory: its rows go, its files stay
    moved = tmp_path / "elsewhere" / outside.name
    shutil.move(outside, moved)
    with ResultStore(results / "llem.db") as store:
        store.ingest(moved)
    code, out, err = _run(llem, "results", "delete", "exp_3", "--yes", "--db", db)
    assert (code, out) == (
        0,
        f"deleted exp_3 from the store; {moved} is outside the results directory: left in place\n",
    ), err
    assert (moved / "result.json").is_file()
    # and so does one reached through a symlink, or an indexed path with `..`
    with ResultStore(results / "llem.db") as store:
        linked = store.get("exp_1").result_path
        target = store.get("exp_2").result_path
    assert linked is not None
    assert target is not None
    real = tmp_path / "real"
    shutil.move(linked, real)
    linked.symlink_to(real, target_is_directory=True)
    escaped = tmp_path / "escaped"
    shutil.move(target, escaped)
    with sqlite3.connect(results / "llem.db") as connection:
        connection.execute(
            "UPDATE experiments SET result_path = ? WHERE experiment_id = 'exp_2'",
            (f"../{escaped.name}",),
        )
    code, out, _ = _run(llem, "db", "check", "--quick", "--db", db)
    assert (code, out) == (
        1,
        f"exp_2: its indexed path '../{escaped.name}' leaves the store's directory\n",
    )
    code, out, err = _run(llem, "results", "delete", "exp_1", "exp_2", "--yes", "--db", db)
    assert code == 0, err
    assert [line.split(";")[0] for line in out.splitlines()] == [
        "deleted exp_1 from the store",
        "deleted exp_2 from the store",
    ]
    assert not linked.is_symlink()  # the link inside was the store's: gone
    assert (real / "result.json").is_file()
    assert (escaped / "result.json").is_file()
    with ResultStore(results / "llem.db") as store:
        assert store.count_experiments(ExperimentFilter(statuses=None)) == 0


def test_delete_asks_first(llem: Llem, results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, _ = _run(llem, "results", "delete", "exp_0", "--db", str(results / "llem.db"))
    assert code == 1
    assert out.startswith(f"delete exp_0 from {results}? [y/N]")
    with ResultStore(results / "llem.db") as store:
        assert store.get("exp_0").result_path is not None


def test_retention_deletes_old_failed_runs_but_not_a_study_s(llem: Llem, results: Path) -> None:
    db = results / "llem.db"
    from llem_schema.testing import EXAMPLE_START, example_config

    with ResultStore(db) as store:
        store.register_study("s1", "sweep")
        store.mark_running("old-failed", example_config(), created=EXAMPLE_START)
        store.mark_failed("old-failed", "out of memory")
        store.mark_running("study-failed", example_config(), created=EXAMPLE_START, study_id="s1")
        store.mark_failed("study-failed", "out of memory")
        store.mark_running("new-failed", example_config())
        store.mark_failed("new-failed", "out of memory")
    code, out, err = _run(
        llem,
        "results",
        "delete",
        "--status",
        "failed",
        "--older-than",
        "5d",
        "--yes",
        "--db",
        str(db),
    )
    assert (code, out) == (0, "deleted old-failed\n"), err
    with ResultStore(db) as store:
        failed = store.list_experiments(ExperimentFilter(statuses=["failed"]))
    assert sorted(s.experiment_id for s in failed) == ["new-failed", "study-failed"]


def test_prune_removes_rows_whose_directory_is_gone(llem: Llem, results: Path) -> None:
    db = str(results / "llem.db")
    with ResultStore(results / "llem.db") as store:
        gone = store.get("exp_2").result_path
    assert gone is not None
    shutil.rmtree(gone)
    code, out, _ = _run(llem, "db", "prune", "--dry-run", "--db", db)
    assert (code, out) == (
        0,
        f"would remove exp_2 (its result directory is gone)\nwould remove 1 experiment from {db}\n",
    )
    code, out, _ = _run(llem, "db", "prune", "--db", db)
    assert (code, out.splitlines()[-1]) == (0, f"removed 1 experiment from {db}")
    # a whole study directory deleted by hand: its runs' rows go too
    with ResultStore(results / "llem.db") as store:
        moved = store.get("exp_1").result_path
    assert moved is not None
    study_dir = results / "sweep"
    study_dir.mkdir()
    shutil.move(moved, study_dir / moved.name)
    with ResultStore(results / "llem.db") as store:
        store.ingest(study_dir / moved.name)
    shutil.rmtree(study_dir)
    code, out, _ = _run(llem, "db", "prune", "--db", db)
    assert (code, out.splitlines()) == (
        0,
        ["removed exp_1 (its result directory is gone)", f"removed 1 experiment from {db}"],
    )
    assert _run(llem, "db", "check", "--db", db)[:2] == (0, "ok: 2 experiments checked\n")


def test_delete_of_a_study_takes_its_runs_its_record_and_its_directory(
    llem: Llem, results: Path
) -> None:
    db = results / "llem.db"
    study_dir = results / "sweep_2026-11-30"
    with ResultStore(db) as store:
        store.register_study("sweep_2026-11-30", "sweep", study_dir=study_dir)
        for experiment_id in ("exp_1", "exp_2"):
            store.link_to_study(experiment_id, "sweep_2026-11-30")
    study_dir.mkdir()
    (study_dir / "study.yaml").write_text("name: sweep\n")
    # a retention rule passes over the study's runs...
    code, out, _ = _run(llem, "results", "delete", "--older-than", "1d", "--yes", "--db", str(db))
    assert code == 0
    assert [line.split(" (")[0] for line in out.splitlines()] == ["deleted exp_0", "deleted exp_3"]
    # ...which go with the study
    code, out, err = _run(llem, "results", "delete", "--study", "sweep", "--yes", "--db", str(db))
    assert code == 0, err
    assert out.splitlines()[-1] == "deleted study sweep (sweep_2026-11-30) and its 2 runs"
    assert not study_dir.exists()
    with ResultStore(db) as store:
        assert store.studies() == []
        assert store.count_experiments(ExperimentFilter(statuses=None)) == 0
    assert sorted(p.name for p in results.iterdir()) == ["llem.db"]


def test_show_says_when_the_file_on_disk_no_longer_matches_the_index(
    llem: Llem, results: Path
) -> None:
    db = str(results / "llem.db")
    with ResultStore(results / "llem.db") as store:
        directory = store.get("exp_2").result_path
    assert directory is not None
    document = json.loads((directory / "result.json").read_text())
    document["measurement_warnings"].append({"code": "unclassified", "message": "by hand"})
    (directory / "result.json").write_text(json.dumps(document))
    code, _, err = _run(llem, "results", "show", "exp_2", "--db", db)
    assert code == 0
    assert err == (
        f"note: {directory}/result.json changed since it was indexed: what follows is the "
        "index's copy; re-index with `llem results import DIR`\n"
    )
    code, out, _ = _run(llem, "results", "show", "exp_0", "--json", "--db", db)
    assert (code, json.loads(out)["result_file"]) == (0, "matches")


def test_check_tells_an_abandoned_run_from_a_live_one(llem: Llem, results: Path) -> None:
    from llem_persistence import StagingRepository
    from llem_schema.testing import example_config

    db = str(results / "llem.db")
    config = example_config()
    study_dir = results / "sweep_1"
    staging, study_staging = StagingRepository(results), StagingRepository(study_dir)
    with ResultStore(results / "llem.db") as store:
        store.register_study("sweep_1", "sweep", study_dir=study_dir)
        for experiment_id in ("run_live", "run_gone", "run_elsewhere"):
            store.mark_running(experiment_id, config)
        store.mark_running("study_run_gone", config, study_id="sweep_1")
    staging.begin(config, "run_live", 1)
    staging.begin(config, "run_gone", 1)  # its process was killed: nothing holds its lock
    study_staging.begin(config, "study_run_gone", 1)  # a study's run stages in its directory
    with staging.running("run_live"):
        code, out, err = _run(llem, "db", "check", "--db", db)
    assert code == 1
    # run_elsewhere is staged under another --output: not judged from here
    assert out.splitlines() == [
        "run_gone: recorded as running, but no process runs it (abandoned); "
        f"`llem aggregate --all --output {results} --db {db}` marks it failed",
        "study_run_gone: recorded as running, but no process runs it (abandoned); "
        f"`llem aggregate --all --output {study_dir} --db {db}` marks it failed",
    ]
    assert err == f"2 problems in {db} (4 experiments checked)\n"  # no advice that cannot help

    code, out, _ = _run(llem, "aggregate", "--all", "--output", str(study_dir), "--db", db)
    assert (code, out) == (
        0,
        "study_run_gone: no process finished; marked failed (remove its staging with "
        "`llem aggregate study_run_gone --discard`)\n",
    )


def test_discard_keeps_a_staging_that_holds_results(llem: Llem, tmp_path: Path) -> None:
    from llem_persistence import StagingRepository
    from llem_schema.testing import example_config, example_raw_result

    results = tmp_path / "results"
    config = example_config()
    staging = StagingRepository(results)
    staging.begin(config, "run_half", 2)
    staging.save_raw(
        "run_half",
        example_raw_result(process_index=0, num_processes=2, config=config).model_copy(
            update={"experiment_id": "run_half"}
        ),
    )
    code, _, err = _run(llem, "aggregate", "run_half", "--discard", "--output", str(results))
    assert (code, err) == (
        2,
        "error: run_half has process results staged, not discarded: save them with "
        f"`llem aggregate run_half --output {results}`\n",
    )
    assert staging.has_raw("run_half")


def test_import_passes_over_a_result_it_cannot_read(llem: Llem, results: Path) -> None:
    db = results / "fresh.db"
    blocked = results / "blocked_run"
    blocked.mkdir()
    (blocked / "result.json").symlink_to("/proc/self/mem")  # a file, which read() refuses
    code, out, err = _run(llem, "results", "import", str(results), "--db", str(db))
    assert code == 1
    assert out == f"indexed 4 (added 4, updated 0, unchanged 0) into {db}\n"
    assert err == (
        f"warning: skipped {blocked}: cannot read {blocked / 'result.json'}: Input/output error\n"
    )

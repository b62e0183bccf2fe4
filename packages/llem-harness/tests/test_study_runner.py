"""The study runner and resume, with real child processes that run a small script instead of a
model: scheduling and gaps, failures and timeouts, Ctrl-C, settling a killed study's runs,
forcing a changed study, the locks, and parallel runs. Each fake child copies a prepared
result.json (an example result of its point's configuration) under its experiment id, or
misbehaves as told."""

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from llem_harness.errors import EXIT_USAGE, StudyChangedError, UsageError, exit_code_for
from llem_harness.study.launcher import Launcher
from llem_harness.study.layout import StudyLayout, hold_study_lock, wait_for_log_lock
from llem_harness.study.session import (
    LoadedStudy,
    RunOptions,
    StudyOutcome,
    load_study,
    resume_study,
    start_study,
    study_from_config,
)
from llem_harness.study.spec import ChildSpec
from llem_schema import (
    ConfigError,
    ExperimentResult,
    StudyConfig,
    StudyManifest,
    StudyPlan,
    StudyResult,
)
from llem_schema.testing import EXAMPLE_EXPERIMENT_ID, example_raw_result, example_result
from llem_store import ExperimentFilter, ResultStore

FAKE_CHILD = r"""
import json, os, signal, sys, time
spec = json.load(open(sys.argv[1]))
run = spec["run_index"]
what = json.loads(os.environ.get("FAKE_PLAN", "{}")).get(str(run), "ok")
print(f"fake run {run}: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}")
if what.startswith("sleep"):
    time.sleep(float(what[5:]))
    what = "ok"
if what == "fail":
    print("loading /nope ...")
    print("error: model directory /nope does not exist")
    sys.exit(1)
if what == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
if what == "deaf":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
if what in ("hang", "deaf"):
    print("inference ...")
    time.sleep(120)
if what == "silent":
    sys.exit(0)
templates = os.environ["FAKE_TEMPLATES"]
with open(os.path.join(templates, f"run_{run}.json")) as handle:
    text = handle.read().replace(os.environ["FAKE_ID"], spec["experiment_id"])
directory = os.path.join(spec["config"]["output_dir"], spec["experiment_id"])
os.makedirs(directory)
with open(os.path.join(directory, "result.json"), "w") as handle:
    handle.write(text)
print(f"result: {directory}")
"""

STUDY = """\
name: unit
base: {n: 4, max_new_tokens: 4}
sweep:
  pytorch.batch_size: [1, 2]
cycles: 2
timeout_s: 30
"""


@dataclass
class Bench:
    """A study file, the fake children's templates, and how to run and resume it."""

    root: Path
    study_file: Path

    @property
    def output(self) -> Path:
        return self.root / "results"

    @property
    def db(self) -> Path:
        return self.output / "llem.db"

    def launcher(self, plan: StudyPlan, behaviour: dict[int, str] | None = None) -> Launcher:
        templates = self.root / "templates"
        templates.mkdir(exist_ok=True)
        for run in plan.runs:
            config = plan.point(run.point_index).config
            raw = example_raw_result(config=config, n_requests=4, seed=run.run_index)
            result = example_result([raw], config=config)
            (templates / f"run_{run.run_index}.json").write_text(result.model_dump_json())
        environment = dict(os.environ) | {
            "FAKE_TEMPLATES": str(templates),
            "FAKE_ID": EXAMPLE_EXPERIMENT_ID,
            "FAKE_PLAN": json.dumps({str(k): v for k, v in (behaviour or {}).items()}),
        }
        return Launcher(
            command=lambda spec: [sys.executable, "-c", FAKE_CHILD, str(spec)],
            environment=environment,
        )

    def options(
        self,
        plan: StudyPlan,
        behaviour: dict[int, str] | None = None,
        *,
        devices: tuple[str | None, ...] = (None,),
    ) -> RunOptions:
        return RunOptions(
            store=self.db, launcher=self.launcher(plan, behaviour), devices=devices, grace_s=1.0
        )

    def start(
        self, behaviour: dict[int, str] | None = None, *, devices: tuple[str, ...] | None = None
    ) -> StudyOutcome:
        loaded = self.load()
        options = self.options(loaded.plan, behaviour, devices=devices or (None,))
        return start_study(loaded, self.output, options)

    def resume(
        self,
        study_dir: Path,
        behaviour: dict[int, str] | None = None,
        *,
        study_file: Path | None = None,
        force: bool = False,
    ) -> StudyOutcome:
        plan = load_study(study_file or study_dir / "study.yaml").plan
        return resume_study(
            study_dir, study_file, force=force, options=self.options(plan, behaviour)
        )

    def load(self) -> LoadedStudy:
        return load_study(self.study_file)


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(STUDY)
    return Bench(tmp_path, study_file)


def result_dirs(study_dir: Path) -> dict[str, Path]:
    """experiment id -> result directory, for every result.json in the study directory."""
    found = {}
    for file in study_dir.glob("*/result.json"):
        found[json.loads(file.read_text())["experiment_id"]] = file.parent
    return found


def assert_each_result_kept_once(outcome: StudyOutcome, db: Path) -> None:
    """Result directories, store rows and manifest entries name the same experiments."""
    completed = [e for e in outcome.manifest.entries if e.status == "completed"]
    ids = [e.experiment_id for e in completed if e.experiment_id is not None]
    assert len(ids) == len(completed)
    assert len(ids) == len(set(ids))
    dirs = result_dirs(outcome.layout.root)
    assert sorted(dirs) == sorted(ids)
    for entry in completed:
        assert entry.result_path is not None
        assert dirs[entry.experiment_id or ""] == outcome.layout.root / entry.result_path
    with ResultStore(db) as store:
        rows = store.list_experiments(
            ExperimentFilter(study=outcome.manifest.study_id, statuses=("completed",))
        )
    assert sorted(row.experiment_id for row in rows) == sorted(ids)


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def manifest_status(study_root: Path, run_index: int) -> str | None:
    try:
        return StudyManifest.load(study_root).entry(run_index).status
    except Exception:
        return None


def only_study_dir(output: Path) -> Path:
    (study_dir,) = [p for p in output.iterdir() if p.is_dir()]
    return study_dir


def test_runs_go_in_plan_order_with_the_gaps_between_them(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.study_file.write_text(
        STUDY + "gap_between_experiments_s: 0.4\ngap_between_cycles_s: 1.0\n"
    )
    outcome = bench.start()
    manifest = outcome.manifest
    assert manifest.status == "completed"
    assert [e.status for e in manifest.entries] == ["completed"] * 4
    assert [(e.point_index, e.cycle) for e in manifest.entries] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    starts = [e.started_at for e in manifest.entries if e.started_at is not None]
    ends = [e.finished_at for e in manifest.entries if e.finished_at is not None]
    assert len(starts) == len(ends) == 4
    pauses = [
        (after - before).total_seconds()
        for before, after in zip(ends[:-1], starts[1:], strict=True)
    ]
    assert pauses[0] >= 0.4
    assert pauses[2] >= 0.4
    assert pauses[1] >= 1.0  # the cycle changes: the cycle gap instead
    assert max(pauses[0], pauses[2]) < 1.0
    assert_each_result_kept_once(outcome, bench.db)

    log = capsys.readouterr().err
    assert "[1/4] point 0 (pytorch.batch_size=1) cycle 0: started" in log
    assert "[4/4] point 1 (pytorch.batch_size=2) cycle 1: completed in " in log
    assert log.count("thermal settling: 1 s\n") == 3  # one plain line per gap, no redraws
    assert "Enter skips" not in log

    root = outcome.layout.root
    assert (root / "study.yaml").read_bytes() == bench.study_file.read_bytes()
    spec = json.loads((root / "runs" / "run_0002.json").read_text())
    assert spec["experiment_id"] == manifest.entries[2].experiment_id
    assert spec["config"]["output_dir"] == str(root)
    assert "fake run 2" in (root / "runs" / "run_0002.log").read_text()
    study = StudyResult.from_json(root)
    assert [c.cycles_completed for c in study.configurations] == [2, 2]
    assert study.configurations[0].metrics["output_tokens_per_s"].n == 2
    with ResultStore(bench.db) as store:
        (registered,) = store.studies()
    assert (registered.study_id, registered.name) == (manifest.study_id, "unit")


def test_a_failure_a_crash_and_a_timeout_fail_only_their_runs(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.study_file.write_text(STUDY.replace("timeout_s: 30", "timeout_s: 1.5"))
    outcome = bench.start({0: "fail", 1: "hang", 2: "crash", 3: "ok"})
    entries = outcome.manifest.entries
    assert [e.status for e in entries] == ["failed", "failed", "failed", "completed"]
    assert entries[0].error == "model directory /nope does not exist"
    assert entries[1].error == "timed out after 1.5 s"
    assert (
        entries[2].error
        == "killed by signal 9 (SIGKILL); last output: fake run 2: CUDA_VISIBLE_DEVICES="
    )
    assert outcome.manifest.status == "completed"
    log = capsys.readouterr().err
    assert (
        "[1/4] point 0 (pytorch.batch_size=1) cycle 0: failed: model directory /nope does not "
        "exist (log: runs/run_0000.log)"
    ) in log
    assert_each_result_kept_once(outcome, bench.db)
    summary = StudyResult.from_json(outcome.layout.root).summary
    assert (summary.completed, summary.failed) == (1, 3)

    # a resume reruns the failed runs only
    resumed = bench.resume(outcome.layout.root)
    assert [e.status for e in resumed.manifest.entries] == ["completed"] * 4
    assert resumed.manifest.entries[3].experiment_id == entries[3].experiment_id
    assert_each_result_kept_once(resumed, bench.db)


def test_every_run_failing_fails_the_study(bench: Bench) -> None:
    outcome = bench.start({0: "fail", 1: "fail", 2: "silent", 3: "fail"})
    assert outcome.manifest.status == "failed"
    assert outcome.manifest.entries[2].error == (
        "its process ended without error but saved no result"
    )


def interrupt_when_running(study_root: Callable[[], Path | None], run_index: int) -> None:
    """From a thread: SIGINT this process (as Ctrl-C would) once run ``run_index`` runs."""

    def watch() -> None:
        def running() -> bool:
            root = study_root()
            return root is not None and manifest_status(root, run_index) == "running"

        wait_until(running)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def test_ctrl_c_puts_the_running_run_back_and_a_resume_finishes(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    def root() -> Path | None:
        found = list(bench.output.glob("unit_*")) if bench.output.exists() else []
        return found[0] if found else None

    interrupt_when_running(root, 1)
    outcome = bench.start({1: "hang"})
    manifest = outcome.manifest
    assert manifest.status == "interrupted"
    assert [e.status for e in manifest.entries] == ["completed", "pending", "pending", "pending"]
    assert manifest.entries[1].error == "interrupted"
    assert manifest.entries[1].experiment_id is not None
    summary = StudyResult.from_json(outcome.layout.root).summary
    assert (summary.completed, summary.pending) == (1, 3)
    assert "[2/4] point 1 (pytorch.batch_size=2) cycle 0: interrupted" in capsys.readouterr().err

    time.sleep(1.0)  # the pause between the interruption and the resume
    resumed = bench.resume(outcome.layout.root)
    assert resumed.manifest.status == "completed"
    assert resumed.manifest.entries[0].experiment_id == manifest.entries[0].experiment_id
    assert resumed.manifest.entries[1].experiment_id != manifest.entries[1].experiment_id
    assert_each_result_kept_once(resumed, bench.db)
    # the pause is recorded and is not study time
    assert resumed.manifest.paused_s >= 1.0
    finished = max(e.finished_at for e in resumed.manifest.entries if e.finished_at)
    whole_s = (finished - resumed.manifest.created_at).total_seconds()
    wall_s = StudyResult.from_json(outcome.layout.root).summary.wall_time_s
    assert wall_s == pytest.approx(whole_s - resumed.manifest.paused_s)


def test_ctrl_c_in_a_gap_of_a_resume_retrying_failed_runs_is_an_interruption(
    bench: Bench,
) -> None:
    bench.study_file.write_text(
        STUDY + "gap_between_experiments_s: 1.5\ngap_between_cycles_s: 1.5\n"
    )
    first = bench.start({1: "fail", 2: "fail", 3: "fail"})
    assert [e.status for e in first.manifest.entries] == ["completed"] + ["failed"] * 3
    root = first.layout.root

    def stop_in_the_gap() -> None:  # run 1 completed, run 2 (still "failed") is queued
        wait_until(lambda: manifest_status(root, 1) == "completed")
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=stop_in_the_gap, daemon=True).start()
    resumed = bench.resume(root)
    assert resumed.manifest.status == "interrupted"
    assert [e.status for e in resumed.manifest.entries] == [
        "completed",
        "completed",
        "failed",
        "failed",
    ]
    assert_each_result_kept_once(resumed, bench.db)


def test_a_child_deaf_to_sigint_is_killed_after_the_grace_period(bench: Bench) -> None:
    def root() -> Path | None:
        found = list(bench.output.glob("unit_*")) if bench.output.exists() else []
        return found[0] if found else None

    interrupt_when_running(root, 0)
    started = time.monotonic()
    outcome = bench.start({0: "deaf"})
    assert time.monotonic() - started < 15
    assert outcome.manifest.entries[0].status == "pending"
    assert outcome.manifest.entries[0].error == "interrupted"
    assert outcome.manifest.status == "interrupted"


def test_resume_settles_runs_a_killed_study_left_running(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = bench.start({2: "fail"})
    root = outcome.layout.root
    manifest = outcome.manifest
    # As if the study process had died: run 1 had saved its result but the manifest still
    # says running; run 2 was cut off before saving anything.
    saved, lost = manifest.entries[1], manifest.entries[2]
    assert saved.result_path is not None
    assert lost.result_path is None
    killed = manifest.with_status("running")
    killed = killed.with_entry(1, status="running", finished_at=None, result_path=None)
    killed = killed.with_entry(2, status="running", finished_at=None, error=None)
    killed.save(root)

    resumed = bench.resume(root)
    entries = resumed.manifest.entries
    assert [e.status for e in entries] == ["completed"] * 4
    assert entries[1].experiment_id == saved.experiment_id  # recognised, not rerun
    assert entries[1].result_path == saved.result_path
    assert entries[2].experiment_id != lost.experiment_id  # rerun under a new id
    assert_each_result_kept_once(resumed, bench.db)
    log = capsys.readouterr().err
    assert "run 1 had saved its result before the study stopped" in log
    assert "run 2 was cut off when the study stopped; it runs again" in log


def test_a_changed_study_file_is_refused_unless_forced(bench: Bench) -> None:
    outcome = bench.start({3: "fail"})
    root = outcome.layout.root
    before = {e.run_index: e.experiment_id for e in outcome.manifest.entries}
    changed = bench.root / "changed.yaml"
    changed.write_text(STUDY.replace("[1, 2]", "[1, 2, 4]"))
    with pytest.raises(StudyChangedError) as refused:
        bench.resume(root, study_file=changed)
    assert str(refused.value) == f"{changed} changed since study {root.name} started"
    assert refused.value.study_dir == root
    assert refused.value.force_does == "use the changed file"
    assert refused.value.original  # the study directory still holds the original
    assert exit_code_for(refused.value) == EXIT_USAGE
    assert StudyManifest.load(root).entries[3].status == "failed"  # nothing touched

    forced = bench.resume(root, study_file=changed, force=True)
    entries = forced.manifest.entries
    assert [(e.point_index, e.cycle) for e in entries] == [
        (0, 0),
        (1, 0),
        (2, 0),
        (0, 1),
        (1, 1),
        (2, 1),
    ]
    assert [e.status for e in entries] == ["completed"] * 6
    # the completed runs of the original file are kept, not rerun
    assert entries[0].experiment_id == before[0]
    assert entries[1].experiment_id == before[1]
    assert entries[3].experiment_id == before[2]
    assert entries[4].experiment_id != before[3]  # it had failed: run again
    assert (root / "study.yaml").read_text() == changed.read_text()
    assert forced.manifest.study_file_sha256 != outcome.manifest.study_file_sha256
    assert_each_result_kept_once(forced, bench.db)


def test_an_edited_copy_in_the_study_directory_is_refused_too(bench: Bench) -> None:
    outcome = bench.start()
    root = outcome.layout.root
    (root / "study.yaml").write_text(STUDY + "# edited\n")
    with pytest.raises(StudyChangedError) as refused:
        bench.resume(root)
    assert str(refused.value) == (
        f"{root / 'study.yaml'} changed since study {root.name} started (it no longer matches "
        "manifest.json); restore it"
    )
    assert refused.value.study_dir == root
    assert refused.value.force_does == "use the changed file"
    assert not refused.value.original
    assert exit_code_for(refused.value) == EXIT_USAGE


def test_a_study_being_run_cannot_be_resumed_at_the_same_time(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path)
    with hold_study_lock(layout), pytest.raises(UsageError) as caught:
        hold_study_lock(layout)
    assert str(caught.value) == (
        f"study {tmp_path.name} is being run by another llem process (it holds "
        f"{tmp_path / '.lock'}); wait for it to end, or stop it first"
    )
    assert exit_code_for(caught.value) == EXIT_USAGE
    with hold_study_lock(layout):  # released when its holder closed it
        pass


def test_a_resume_waits_for_a_run_whose_process_still_lives(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path)
    layout.runs_dir.mkdir()
    log = layout.log_file(3)
    import fcntl

    with log.open("ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(UsageError) as caught:
            wait_for_log_lock(layout, 3, timeout_s=0.3)
    assert str(caught.value) == (
        f"run 3 of study {tmp_path.name} is still running in another process ({log} is "
        "locked); wait for it to end, or stop it first"
    )
    assert exit_code_for(caught.value) == EXIT_USAGE
    wait_for_log_lock(layout, 3, timeout_s=0.3)  # free once its holder is gone


def test_parallel_refuses_points_that_cannot_run_side_by_side(bench: Bench) -> None:
    # the default energy source reads RAPL where it can: shared by runs on one host
    with pytest.raises(UsageError) as caught:
        bench.start(devices=("0", "1"))
    assert str(caught.value) == (
        "running experiments side by side on one host, each would count the others' CPU "
        "(RAPL) energy: point 0 has energy.source 'auto'; set energy.source to nvml (or none) "
        "in the study"
    )
    assert exit_code_for(caught.value) == EXIT_USAGE
    bench.study_file.write_text(
        STUDY.replace("base: {n: 4,", "base: {energy: {source: nvml}, num_processes: 2, n: 4,")
    )
    with pytest.raises(UsageError) as caught:
        bench.start(devices=("0", "1"))
    assert str(caught.value) == (
        "a parallel study pins each run to one GPU: point 0 has num_processes 2; run it one "
        "experiment at a time"
    )
    assert exit_code_for(caught.value) == EXIT_USAGE
    bench.study_file.write_text(
        STUDY.replace("base: {n: 4,", "base: {energy: {source: nvml, devices: all}, n: 4,")
    )
    with pytest.raises(UsageError) as caught:
        bench.start(devices=("0", "1"))
    assert str(caught.value) == (
        "running experiments side by side, each would meter the GPUs the others use: point 0 "
        "names energy.devices; leave it out (each run meters its own GPU) or run one experiment "
        "at a time"
    )
    assert not bench.output.exists()  # refused before any study directory was made


def test_parallel_runs_one_per_device_at_a_time_each_pinned(bench: Bench) -> None:
    bench.study_file.write_text(
        STUDY.replace("base: {n: 4,", "base: {energy: {source: none}, n: 4,")
    )
    outcome = bench.start(dict.fromkeys(range(4), "sleep1.0"), devices=("0", "1"))
    entries = outcome.manifest.entries
    assert [e.status for e in entries] == ["completed"] * 4
    spans = [(e.started_at, e.finished_at) for e in entries]
    # runs 0 and 1 start together, each on its own device; 2 and 3 follow when they are free
    first, second = spans[0], spans[1]
    assert first[0] is not None
    assert first[1] is not None
    assert second[0] is not None
    assert second[1] is not None
    assert second[0] < first[1]
    assert first[0] < second[1]
    root = outcome.layout.root
    devices = []
    for run in range(4):
        spec = json.loads((root / "runs" / f"run_{run:04d}.json").read_text())
        log = (root / "runs" / f"run_{run:04d}.log").read_text()
        assert f"fake run {run}: CUDA_VISIBLE_DEVICES={spec['device']}" in log
        devices.append(spec["device"])
    assert sorted(devices[:2]) == ["0", "1"]
    assert set(devices) == {"0", "1"}
    assert_each_result_kept_once(outcome, bench.db)


def test_completed_results_load_as_experiment_results(bench: Bench) -> None:
    outcome = bench.start()
    for entry in outcome.manifest.entries:
        directory = entry.result_dir(outcome.layout.root)
        assert directory is not None
        result = ExperimentResult.from_json(directory)
        assert result.experiment_id == entry.experiment_id
        assert result.measurement_config_hash == entry.config_hash


def test_a_study_built_in_python_runs_without_a_store(bench: Bench) -> None:
    config = StudyConfig.model_validate(
        {
            "name": "unit",
            "base": {"n": 4, "max_new_tokens": 4},
            "sweep": {"pytorch.batch_size": [1, 2]},
            "cycles": 1,
            "timeout_s": 30,
        }
    )
    loaded = study_from_config(config)
    assert loaded.path is None
    assert [point.config.backend_section()["batch_size"] for point in loaded.plan.points] == [
        1,
        2,
    ]
    options = RunOptions(store=False, launcher=bench.launcher(loaded.plan), grace_s=1.0)
    outcome = start_study(loaded, bench.output, options)
    assert [e.status for e in outcome.manifest.entries] == ["completed"] * 2
    assert outcome.manifest.status == "completed"
    root = outcome.layout.root
    assert (root / "study.yaml").read_bytes() == loaded.data  # what a resume reads back
    assert load_study(root / "study.yaml").plan.design_hash == loaded.plan.design_hash
    spec = ChildSpec.load(root / "runs" / "run_0000.json")
    assert spec.store_path is None
    assert not bench.db.exists()  # indexed nowhere
    assert [c.cycles_completed for c in outcome.result.configurations] == [1, 1]
    assert outcome.result == StudyResult.from_json(root)

    resumed = resume_study(
        root,
        None,
        force=False,
        options=RunOptions(store=False, launcher=bench.launcher(loaded.plan), grace_s=1.0),
    )
    assert resumed.manifest.entries == outcome.manifest.entries  # nothing left to run
    assert not bench.db.exists()


def test_resuming_a_directory_that_is_not_a_study_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        resume_study(tmp_path, None, force=False, options=RunOptions(store=False))
    assert str(caught.value) == f"{tmp_path} is not a study directory (it has no manifest.json)"
    assert exit_code_for(caught.value) == EXIT_USAGE


class CoolingGpus:
    """A thermometer whose GPUs cool by ``step_c`` every reading, from ``start_c``."""

    def __init__(self, start_c: float, step_c: float) -> None:
        self.next_c = start_c
        self.step_c = step_c
        self.readings: list[tuple[str | None, float]] = []

    def hottest_c(self, device: str | None) -> float | None:
        reading = self.next_c
        self.readings.append((device, reading))
        self.next_c -= self.step_c
        return reading


def test_the_cooldown_waits_for_the_gpus_to_cool_after_the_fixed_gap(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.study_file.write_text(
        STUDY.replace("cycles: 2", "cycles: 1")
        + "gap_between_experiments_s: 0.2\n"
        + "gap: {until_temperature_c: 45, max_s: 30}\n"
    )
    loaded = bench.load()
    thermometer = CoolingGpus(start_c=48.0, step_c=1.0)  # 48, 47, 46, 45: three seconds
    options = replace(bench.options(loaded.plan), thermometer=thermometer)
    outcome = start_study(loaded, bench.output, options)
    entries = outcome.manifest.entries
    assert [e.status for e in entries] == ["completed", "completed"]
    assert entries[0].finished_at is not None
    assert entries[1].started_at is not None
    pause_s = (entries[1].started_at - entries[0].finished_at).total_seconds()
    assert pause_s >= 3.0  # read once a second until 45 °C
    assert [reading for _, reading in thermometer.readings] == [48.0, 47.0, 46.0, 45.0]
    log = capsys.readouterr().err
    assert "cooldown: GPUs at 48 °C, waiting for 45 °C (at most 30 s)" in log


def test_the_cooldown_gives_up_after_max_s(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.study_file.write_text(
        STUDY.replace("cycles: 2", "cycles: 1") + "gap: {until_temperature_c: 45, max_s: 1.5}\n"
    )
    loaded = bench.load()
    never = CoolingGpus(start_c=90.0, step_c=0.0)  # never cools
    outcome = start_study(
        loaded, bench.output, replace(bench.options(loaded.plan), thermometer=never)
    )
    entries = outcome.manifest.entries
    assert [e.status for e in entries] == ["completed", "completed"]
    assert entries[0].finished_at is not None
    assert entries[1].started_at is not None
    pause_s = (entries[1].started_at - entries[0].finished_at).total_seconds()
    assert 1.5 <= pause_s < 5.0
    assert "cooldown: still 90 °C after 1.5 s; going on" in capsys.readouterr().err


def test_a_study_started_before_skip_invalid_existed_still_resumes(tmp_path: Path) -> None:
    """Its invalid points were skipped when it started; a resume skips them again."""
    study_file = tmp_path / "old.yaml"
    study_file.write_text(
        "name: old\nbase: {model: llem/tiny, n: 4}\nsweep:\n  pytorch.batch_size: [1, 0]\n"
    )
    with pytest.raises(ConfigError, match="set skip_invalid: true in the study"):
        load_study(study_file)
    started_from = hashlib.sha256(study_file.read_bytes()).hexdigest()
    plan = load_study(study_file, started_from=started_from).plan
    assert [point.index for point in plan.points] == [0]
    assert [skip.index for skip in plan.skipped] == [1]
    # a changed file (a resume with --force) follows the rules: a new invalid value refuses
    study_file.write_text(study_file.read_text().replace("[1, 0]", "[1, 0, -3]"))
    with pytest.raises(ConfigError, match="set skip_invalid: true in the study"):
        load_study(study_file, started_from=started_from)

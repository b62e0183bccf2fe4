"""`llem study` end to end on the built-in tiny model: every run a real child process with real
torch and transformers, one prompt and two new tokens each, so a run costs its imports and
little else. One 2 x 2 sweep with 2 cycles (run with --parallel on two CPU "devices" to halve
its wall time) is shared by the tests that only read it."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from llem_schema import StudyManifest, StudyResult
from llem_store import ExperimentFilter, ResultStore

BASE = """\
base:
  n: 1
  max_new_tokens: 2
  warmup: {count: 0}
  baseline: {enabled: false}
  energy: {source: none}
"""

SWEEP = f"""\
name: sweep
{BASE}sweep:
  pytorch.batch_size: [1, 2]
  max_new_tokens: [2, 3]
cycles: 2
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="process groups and signals are POSIX"),
]


def llem(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def start_llem(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`llem ARGS` in the background, with the default SIGINT disposition a terminal gives."""
    return subprocess.Popen(
        [sys.executable, "-m", "llem", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def study_env(cache: Path) -> dict[str, str]:
    env = os.environ | {
        "LLEM_CACHE_DIR": str(cache),
        "XDG_CACHE_HOME": str(cache),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
    }
    env.pop("LLEM_DB", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def study_dirs(output: Path) -> list[Path]:
    return sorted(p for p in output.iterdir() if p.is_dir()) if output.exists() else []


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def entry_status(output: Path, run_index: int) -> tuple[str, str | None] | None:
    """(status, experiment id) of a run in the only study under ``output``, once readable."""
    dirs = study_dirs(output)
    if not dirs or not (dirs[0] / "manifest.json").is_file():
        return None
    entry = StudyManifest.load(dirs[0]).entry(run_index)
    return entry.status, entry.experiment_id


def result_dirs(study_dir: Path) -> dict[str, Path]:
    return {
        json.loads(file.read_text())["experiment_id"]: file.parent
        for file in study_dir.glob("*/result.json")
    }


def assert_kept_exactly_once(study_dir: Path, db: Path) -> StudyManifest:
    """Every completed run has one result directory and one completed store row in the study,
    and there are no others."""
    manifest = StudyManifest.load(study_dir)
    completed = [e for e in manifest.entries if e.status == "completed"]
    ids = sorted(e.experiment_id for e in completed if e.experiment_id is not None)
    assert len(ids) == len(set(ids)) == len(completed)
    dirs = result_dirs(study_dir)
    assert sorted(dirs) == ids
    for entry in completed:
        assert entry.result_path is not None
        assert entry.experiment_id is not None
        assert dirs[entry.experiment_id] == study_dir / entry.result_path
    with ResultStore(db, create=False) as store:
        rows = store.list_experiments(
            ExperimentFilter(study=manifest.study_id, statuses=("completed",))
        )
    assert sorted(row.experiment_id for row in rows) == ids
    return manifest


@dataclass(frozen=True)
class Sweep:
    output: Path
    study_file: Path
    study_dir: Path
    completed: subprocess.CompletedProcess[str]
    env: dict[str, str]
    seconds: float


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, llem_cache: Path) -> Sweep:
    root = tmp_path_factory.mktemp("sweep")
    study_file = root / "sweep.yaml"
    study_file.write_text(SWEEP)
    output = root / "results"
    env = study_env(llem_cache)
    started = time.monotonic()
    completed = llem(
        "study", str(study_file), "-o", str(output), "--parallel", "--devices", "0,1", env=env
    )
    seconds = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    (study_dir,) = study_dirs(output)
    return Sweep(output, study_file, study_dir, completed, env, seconds)


def test_a_2x2_sweep_with_2_cycles_completes_every_run(sweep: Sweep) -> None:
    study_dir = sweep.study_dir
    assert re.fullmatch(r"sweep_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_[0-9a-f]{6}", study_dir.name)
    assert sweep.completed.stdout.splitlines()[0] == (
        f"study {study_dir.name}: 8 completed, 0 failed, 0 skipped; "
        f"see {study_dir / 'manifest.json'}"
    )
    manifest = assert_kept_exactly_once(study_dir, sweep.output / "llem.db")
    assert manifest.status == "completed"
    assert [e.status for e in manifest.entries] == ["completed"] * 8
    assert sorted((e.point_index, e.cycle) for e in manifest.entries) == [
        (point, cycle) for point in range(4) for cycle in range(2)
    ]
    assert (study_dir / "study.yaml").read_bytes() == sweep.study_file.read_bytes()
    for run in range(8):
        log = (study_dir / "runs" / f"run_{run:04d}.log").read_text()
        assert "result: " in log, log
    assert not (study_dir / ".staging").exists()

    with ResultStore(sweep.output / "llem.db", create=False) as store:
        rows = store.list_experiments(ExperimentFilter(study="sweep", statuses=None))
        (registered,) = store.studies()
    assert len(rows) == 8
    assert {row.study_id for row in rows} == {study_dir.name}
    assert {row.status for row in rows} == {"completed"}
    assert (registered.name, registered.experiments) == ("sweep", 8)

    result = StudyResult.from_json(study_dir)
    assert (result.summary.completed, result.summary.total) == (8, 8)
    assert [c.point_index for c in result.configurations] == [0, 1, 2, 3]
    assert [c.overrides for c in result.configurations] == [
        {"pytorch.batch_size": 1, "max_new_tokens": 2},
        {"pytorch.batch_size": 1, "max_new_tokens": 3},
        {"pytorch.batch_size": 2, "max_new_tokens": 2},
        {"pytorch.batch_size": 2, "max_new_tokens": 3},
    ]
    for configuration in result.configurations:
        assert configuration.cycles_completed == 2
        throughput = configuration.metrics["output_tokens_per_s"]
        assert throughput.n == 2
        assert throughput.ci_low is not None
        assert throughput.ci_high is not None
        assert throughput.ci_low <= throughput.mean <= throughput.ci_high
        assert "output_tokens_per_j" not in configuration.metrics  # no energy measured here


def test_parallel_runs_overlap_one_per_device_each_pinned(sweep: Sweep) -> None:
    manifest = StudyManifest.load(sweep.study_dir)
    first, second = manifest.entries[0], manifest.entries[1]
    assert first.started_at is not None
    assert first.finished_at is not None
    assert second.started_at is not None
    assert second.finished_at is not None
    assert second.started_at < first.finished_at
    assert first.started_at < second.finished_at
    seen = []
    for run in range(8):
        log = (sweep.study_dir / "runs" / f"run_{run:04d}.log").read_text()
        match = re.search(
            r"^run \d+ of study \S+: experiment \S+, pid \d+, CUDA_VISIBLE_DEVICES=(\S*)$",
            log,
            re.MULTILINE,
        )
        assert match, log
        spec = json.loads((sweep.study_dir / "runs" / f"run_{run:04d}.json").read_text())
        assert match[1] == spec["device"]  # what the child saw is what it was given
        seen.append(match[1])
    assert sorted(seen[:2]) == ["0", "1"]
    assert set(seen) == {"0", "1"}
    assert (
        "[1/8] point 0 (pytorch.batch_size=1, max_new_tokens=2) cycle 0 on device 0: started"
        in (sweep.completed.stderr)
    )


def test_study_show_prints_each_configuration_and_json(sweep: Sweep) -> None:
    shown = llem("study", "show", str(sweep.study_dir), env=sweep.env)
    assert shown.returncode == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert lines[0] == (
        f"study {sweep.study_dir.name} (sweep): completed; 8 completed, 0 failed, 0 skipped, "
        "0 not run"
    )
    rows = [line for line in lines if re.match(r"\d+ pytorch\.", line)]
    assert len(rows) == 4
    assert rows[3].startswith("3 pytorch.batch_size=2, max_new_tokens=3 2 ")
    as_json = llem("study", "show", str(sweep.study_dir), "--json", env=sweep.env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == json.loads((sweep.study_dir / "study.json").read_text())


def test_the_report_of_the_real_sweep_draws_throughput_and_says_why_not_energy(
    sweep: Sweep, tmp_path: Path
) -> None:
    """Found by its name in the store; run with energy off, so the energy figures are notes."""
    page = tmp_path / "sweep.html"
    db = str(sweep.output / "llem.db")
    reported = llem("report", "--study", "sweep", "-o", str(page), "--db", db, env=sweep.env)
    assert reported.returncode == 0, reported.stderr
    text = page.read_text(encoding="utf-8")
    assert re.findall(r"<h3>([^<]+)</h3>", text) == ["Latency distributions", "Throughput"]
    assert text.count("<tr><td>batch_size=") == 4
    assert (
        "note: Energy per output token: not drawn: no configuration has "
        "energy_per_output_token_j in every cycle (no energy measured, or no tokens)"
    ) in reported.stderr
    assert "note: Energy against p99 latency: not drawn:" in reported.stderr


def test_dry_run_lists_runs_skips_and_estimates_from_history(sweep: Sweep, tmp_path: Path) -> None:
    planned = tmp_path / "more.yaml"
    planned.write_text(
        SWEEP.replace("[2, 3]", "[2, 3, 5]")
        + "gap_between_experiments_s: 10\ngap_between_cycles_s: 60\n"
        + "experiments:\n  - {pytorch.batch_size: 0}\n"
    )
    refused = llem("study", str(planned), "-o", str(sweep.output), "--dry-run", env=sweep.env)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith(
        f"error: {planned}: study 'sweep': point 6 (pytorch.batch_size=0) is not a valid "
        "experiment: "
    )
    assert refused.stderr.rstrip().endswith(
        "set skip_invalid: true in the study to skip such points"
    )
    planned.write_text(planned.read_text() + "skip_invalid: true\n")
    before = study_dirs(sweep.output)
    completed = llem("study", str(planned), "-o", str(sweep.output), "--dry-run", env=sweep.env)
    assert completed.returncode == 0, completed.stderr
    assert study_dirs(sweep.output) == before  # nothing created
    lines = [" ".join(line.split()) for line in completed.stdout.splitlines()]
    assert lines[0] == (
        "study sweep: 6 point(s) x 2 cycle(s) = 12 run(s), order interleaved; 1 point(s) skipped"
    )
    assert "0 0 0 pytorch.batch_size=1, max_new_tokens=2" in lines
    assert "11 5 1 pytorch.batch_size=2, max_new_tokens=5" in lines
    assert any(
        line.startswith("skipped: point 6 (pytorch.batch_size=0): ") and "greater than 0" in line
        for line in lines
    )
    history = [line for line in lines if line.startswith("point ")]
    assert len(history) == 6
    assert history[2] == "point 2 (pytorch.batch_size=1, max_new_tokens=5): no earlier run: unknown"
    assert history[5] == "point 5 (pytorch.batch_size=2, max_new_tokens=5): no earlier run: unknown"
    for known in (history[0], history[1], history[3], history[4]):
        # a run's whole time (its model loaded, warmed up) is longer than its window
        found = re.fullmatch(r"point \d \(.*\): (\d+\.\d) s \(window (\d+\.\d) s\)", known)
        assert found is not None, known
        assert float(found[1]) > float(found[2]), known
    estimate = lines[-1]
    # 10 gaps of 10 s within cycles and one of 60 s between them
    assert re.fullmatch(
        r"estimated time: at least \d+ min \d\d s \(runs \d+(\.\d)? (s|min \d\d s), of which "
        r"measurement windows \d+\.\d s, \+ gaps 2 min 40 s\); 2 of 6 point\(s\) have no "
        r"earlier run",
        estimate,
    ), estimate


def test_a_killed_study_and_a_ctrl_c_both_resume_keeping_every_result_once(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    study_file = tmp_path / "story.yaml"
    study_file.write_text(f"name: story\n{BASE}cycles: 2\n")
    output = tmp_path / "results"
    db = output / "llem.db"

    # 1. the study process is SIGKILLed while run 1 runs (its child stops by itself)
    with start_llem("study", str(study_file), "-o", str(output), env=llem_env) as study:
        wait_for(lambda: (entry_status(output, 1) or ("",))[0] == "running", "run 1 to start")
        status = entry_status(output, 1)
        assert status is not None
        killed_id = status[1]
        time.sleep(1.0)
        study.kill()
        study.communicate(timeout=30)
    (study_dir,) = study_dirs(output)
    manifest = StudyManifest.load(study_dir)
    assert [e.status for e in manifest.entries] == ["completed", "running"]
    first_id = manifest.entries[0].experiment_id

    # 2. a resume settles run 1 (no result: pending again) and runs it; Ctrl-C stops that
    with start_llem("study", "--resume", str(study_dir), env=llem_env) as resumed:

        def rerunning() -> bool:
            status = entry_status(output, 1)
            return status is not None and status[0] == "running" and status[1] != killed_id

        wait_for(rerunning, "run 1 to run again")
        time.sleep(1.0)
        resumed.send_signal(signal.SIGINT)
        _, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"error: study {study_dir.name} interrupted: 1 completed, 0 failed, 1 not run; resume "
        f"with `llem study --resume {study_dir}`"
    )
    assert "run 1 was cut off when the study stopped; it runs again" in stderr
    manifest = StudyManifest.load(study_dir)
    assert manifest.status == "interrupted"
    assert [(e.status, e.error) for e in manifest.entries] == [
        ("completed", None),
        ("pending", "interrupted"),
    ]
    interrupted_id = manifest.entries[1].experiment_id
    assert StudyResult.from_json(study_dir).summary.completed == 1

    # 3. the last resume completes the study
    finished = llem("study", "--resume", str(study_dir), env=llem_env)
    assert finished.returncode == 0, finished.stderr
    manifest = assert_kept_exactly_once(study_dir, db)
    assert manifest.status == "completed"
    assert manifest.entries[0].experiment_id == first_id
    assert manifest.entries[1].experiment_id not in (killed_id, interrupted_id)
    with ResultStore(db, create=False) as store:
        attempts = {
            row.experiment_id: (row.status, row.error)
            for row in store.list_experiments(ExperimentFilter(study="story", statuses=None))
        }
    assert attempts[killed_id or ""] == ("failed", "interrupted")
    assert attempts[interrupted_id or ""] == ("failed", "interrupted")
    assert len(attempts) == 4
    assert StudyResult.from_json(study_dir).configurations[0].cycles_completed == 2


def test_a_failing_configuration_is_recorded_and_a_fixed_file_resumes_with_force(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    missing = tmp_path / "no-such-model"
    study_file = tmp_path / "fails.yaml"
    study_file.write_text(
        f"name: fails\n{BASE}experiments:\n  - {{model: {missing}}}\n  - {{max_new_tokens: 2}}\n"
    )
    output = tmp_path / "results"
    completed = llem("study", str(study_file), "-o", str(output), env=llem_env)
    assert completed.returncode == 1, completed.stderr
    (study_dir,) = study_dirs(output)
    assert completed.stdout.splitlines()[0] == (
        f"study {study_dir.name}: 1 completed, 1 failed, 0 skipped; "
        f"see {study_dir / 'manifest.json'}"
    )
    manifest = StudyManifest.load(study_dir)
    failed, good = manifest.entries
    assert (failed.status, good.status) == ("failed", "completed")
    assert failed.error is not None
    assert failed.error.startswith(f"model directory {missing} does not exist")
    assert f"failed: {failed.error} (log: runs/run_0000.log)" in completed.stderr
    assert f"error: {failed.error}" in (study_dir / "runs" / "run_0000.log").read_text()
    # refused by the backend's prepare() before anything ran: the manifest and the run's log
    # keep why; the store indexes experiments that started, and this one never did
    with ResultStore(output / "llem.db", create=False) as store:
        rows = store.list_experiments(ExperimentFilter(study="fails", statuses=None))
    assert [row.experiment_id for row in rows] == [good.experiment_id]

    # the researcher drops the broken configuration and keeps what was measured
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(study_file.read_text().replace(f"  - {{model: {missing}}}\n", ""))
    refused = llem("study", str(fixed), "--resume", str(study_dir), env=llem_env)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: {fixed} changed since study {study_dir.name} started; resume with the original "
        f"(llem study --resume {study_dir}), or pass --force to use the changed file\n"
    )

    forced = llem("study", str(fixed), "--resume", str(study_dir), "--force", env=llem_env)
    assert forced.returncode == 0, forced.stderr
    assert "forced: re-planned study" in forced.stderr
    assert "1 completed run(s) kept" in forced.stderr
    assert forced.stdout.splitlines()[0] == (
        f"study {study_dir.name}: 1 completed, 0 failed, 0 skipped; "
        f"see {study_dir / 'manifest.json'}"
    )
    manifest = assert_kept_exactly_once(study_dir, output / "llem.db")
    (kept,) = manifest.entries
    assert (kept.status, kept.experiment_id) == ("completed", good.experiment_id)  # not rerun
    assert (study_dir / "study.yaml").read_text() == fixed.read_text()


def test_a_run_past_the_timeout_fails_timed_out(tmp_path: Path, llem_env: dict[str, str]) -> None:
    study_file = tmp_path / "slow.yaml"
    study_file.write_text(f"name: slow\n{BASE}timeout_s: 2\n")
    output = tmp_path / "results"
    started = time.monotonic()
    completed = llem("study", str(study_file), "-o", str(output), env=llem_env)
    assert time.monotonic() - started < 30
    assert completed.returncode == 1, completed.stderr
    (study_dir,) = study_dirs(output)
    manifest = StudyManifest.load(study_dir)
    assert manifest.status == "failed"
    (entry,) = manifest.entries
    assert (entry.status, entry.error) == ("failed", "timed out after 2 s")
    assert not result_dirs(study_dir)


def test_a_bad_study_file_exits_2_in_one_line(tmp_path: Path, llem_env: dict[str, str]) -> None:
    study_file = tmp_path / "bad.yaml"
    study_file.write_text("name: bad\nsweep:\n  pytorch.batchsize: [1, 2]\n")
    completed = llem("study", str(study_file), env=llem_env, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith(f"error: {study_file}: sweep: unknown config key")
    duplicated = tmp_path / "twice.yaml"
    duplicated.write_text("name: a\nname: b\n")
    completed = llem("study", str(duplicated), env=llem_env, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr == f"error: {duplicated} line 2: duplicate key 'name'\n"


def test_the_example_study_is_valid_and_says_how_to_run_it() -> None:
    from llem_harness.study.session import load_study

    example = Path(__file__).resolve().parents[1] / "examples" / "study.yaml"
    loaded = load_study(example)
    assert (len(loaded.plan.points), len(loaded.plan.runs), loaded.plan.skipped) == (4, 12, [])
    assert {p.config.model for p in loaded.plan.points} == {"llem/tiny"}
    text = example.read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "uv run llem study examples/study.yaml" in text


def test_the_example_sweep_of_request_rates_is_valid_and_says_how_to_run_it() -> None:
    from llem_harness.study.session import load_study

    example = Path(__file__).resolve().parents[1] / "examples" / "serve-rates.yaml"
    loaded = load_study(example)
    assert (len(loaded.plan.points), len(loaded.plan.runs), loaded.plan.skipped) == (3, 9, [])
    rates = [p.config.load.rate_per_s for p in loaded.plan.points]
    assert rates == [2.0, 8.0, 32.0]
    assert {p.config.backend for p in loaded.plan.points} == {"openai"}
    text = example.read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "uv run llem study examples/serve-rates.yaml" in text

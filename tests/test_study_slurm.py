"""`llem study --executor slurm` on a real one-node Slurm cluster (tests/conftest.py starts
Debian's munge, slurmctld and slurmd), each run a real job running the built-in tiny model:
a study to completion, a cancelled job submitted again on resume, the controller killed while
its jobs run, a job over its time limit, a refused submission, and no Slurm at all. Only the
controller writes the manifest and the store; every result is kept exactly once."""

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
from typing import Protocol

import pytest

from llem_harness.study.session import load_study
from llem_schema import StudyManifest, StudyResult
from llem_store import ExperimentFilter, ResultStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="Debian's Slurm daemons"),
]

BASE = """\
base:
  n: 1
  max_new_tokens: 2
  warmup: {count: 0}
  baseline: {enabled: false}
  energy: {source: none}
executor:
  kind: slurm
  gpus_per_run: 0
  cpus_per_run: 1
"""


class Cluster(Protocol):
    @property
    def env(self) -> dict[str, str]: ...


def llem(*args: str, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def study_dir(output: Path) -> Path:
    (found,) = [p for p in output.iterdir() if p.is_dir() and (p / "manifest.json").is_file()]
    return found


def kept_once(directory: Path, db: Path) -> StudyManifest:
    """Every completed run has its one result directory and one completed store row, and
    there are no others."""
    manifest = StudyManifest.load(directory)
    completed = sorted(e.experiment_id or "" for e in manifest.entries if e.status == "completed")
    saved = sorted(
        json.loads(file.read_text())["experiment_id"] for file in directory.glob("*/result.json")
    )
    assert saved == completed
    with ResultStore(db, create=False) as store:
        rows = store.list_experiments(ExperimentFilter(study=manifest.study_id, statuses=None))
    assert sorted(r.experiment_id for r in rows if r.status == "completed") == completed
    return manifest


def squeue(env: dict[str, str]) -> list[str]:
    listed = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i|%T|%j"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if "llem-" in line]


@dataclass(frozen=True)
class Setup:
    root: Path
    env: dict[str, str]

    def study_file(self, text: str, name: str = "study.yaml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path


@pytest.fixture
def setup(tmp_path: Path, llem_env: dict[str, str], slurm_cluster: Cluster) -> Setup:
    return Setup(tmp_path, llem_env | slurm_cluster.env)


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 120.0, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def test_a_2x2_study_runs_through_slurm_to_completion(setup: Setup) -> None:
    sweep = (
        BASE
        + "name: grid\nsweep:\n  pytorch.batch_size: [1, 2]\n  max_new_tokens: [2, 3]\ncycles: 2\n"
    )
    file = setup.study_file(sweep)
    output = setup.root / "results"
    completed = llem("study", str(file), "-o", str(output), env=setup.env)
    assert completed.returncode == 0, completed.stderr
    directory = study_dir(output)
    manifest = kept_once(directory, output / "llem.db")
    assert manifest.status == "completed"
    assert manifest.executor is not None
    assert manifest.executor.kind == "slurm"
    arrays = {e.slurm_job_id.split("_")[0] for e in manifest.entries if e.slurm_job_id}
    assert len(arrays) == 1  # one job array for the whole study
    assert [e.slurm_job_id for e in manifest.entries] == [
        f"{next(iter(arrays))}_{e.run_index}" for e in manifest.entries
    ]
    assert f"submitted 8 run(s) to Slurm as job array {next(iter(arrays))}" in completed.stderr
    log = (directory / "runs" / "run_0003.log").read_text()
    assert f"Slurm job {manifest.entries[3].slurm_job_id} ---" in log
    assert re.search(r"^result: .+$", log, re.MULTILINE)
    # the same points, hashes and cycles as the study run on this machine
    local = load_study(file).plan
    summary = StudyResult.from_json(directory)
    assert summary.design_hash == local.design_hash
    assert [(c.point_index, c.config_hash, c.cycles_completed) for c in summary.configurations] == [
        (p.index, p.config_hash, 2) for p in local.points
    ]
    shown = llem("study", "show", str(directory), env=setup.env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].startswith(
        f"study {directory.name} (grid): completed; 8 completed, 0 failed"
    )
    status = llem("study", "status", str(directory), env=setup.env)
    assert status.returncode == 0, status.stderr
    assert status.stdout == f"study {directory.name} (not followed now): 8 completed\n"


def test_a_cancelled_job_is_submitted_again_on_resume(setup: Setup) -> None:
    file = setup.study_file(BASE + "name: again\ncycles: 3\n")
    output = setup.root / "results"
    detached = llem(
        "study", str(file), "-o", str(output), "--detach", "--max-parallel", "1", env=setup.env
    )
    assert detached.returncode == 0, detached.stderr
    directory = study_dir(output)
    assert detached.stdout.startswith(f"study {directory.name}: 3 run(s) in Slurm; ")
    first = StudyManifest.load(directory)
    assert first.executor is not None
    assert first.executor.max_parallel == 1
    last = first.entries[2].slurm_job_id
    assert last is not None
    status = llem("study", "status", str(directory), "--json", env=setup.env)
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)
    assert [r["slurm_job_id"] for r in runs] == [e.slurm_job_id for e in first.entries]
    assert runs[2]["status"] == "queued"  # at most one at a time: the last waits
    subprocess.run(["scancel", last], env=setup.env, check=True)
    resumed = llem("study", "--resume", str(directory), env=setup.env)
    assert resumed.returncode == 0, resumed.stderr
    # a task cancelled before it started leaves squeue at once (and this cluster keeps no
    # accounting for sacct to ask)
    assert f"failed: Slurm no longer knows its job {last} (cancelled before it started" in (
        resumed.stderr
    )
    manifest = kept_once(directory, output / "llem.db")
    assert [e.status for e in manifest.entries] == ["completed"] * 3
    assert manifest.entries[0].slurm_job_id == first.entries[0].slurm_job_id  # followed, kept
    again = manifest.entries[2].slurm_job_id
    assert again is not None
    assert again != last  # submitted again
    assert again.endswith("_2")


def test_the_controller_killed_while_its_jobs_run_resumes_with_every_result_once(
    setup: Setup,
) -> None:
    file = setup.study_file(BASE + "name: killed\ncycles: 2\n")
    output = setup.root / "results"
    controller = subprocess.Popen(
        [sys.executable, "-m", "llem", "study", str(file), "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=setup.env,
    )
    try:

        def submitted() -> bool:
            try:
                manifest = StudyManifest.load(study_dir(output))
            except (ValueError, OSError, AssertionError):
                return False
            return all(e.slurm_job_id for e in manifest.entries)

        wait_for(submitted, what="the runs to be submitted")
        controller.send_signal(signal.SIGKILL)
    finally:
        controller.wait(timeout=30)
    directory = study_dir(output)
    assert [e.status for e in StudyManifest.load(directory).entries] == ["running"] * 2
    resumed = llem("study", "--resume", str(directory), env=setup.env)
    assert resumed.returncode == 0, resumed.stderr
    assert (
        "following 2 run(s) already in Slurm" in resumed.stderr
        or "completed (Slurm job" in resumed.stderr
    )
    manifest = kept_once(directory, output / "llem.db")
    assert [e.status for e in manifest.entries] == ["completed"] * 2
    assert squeue(setup.env) == [] or all("COMPLETED" in line for line in squeue(setup.env))


def test_a_job_over_its_time_limit_fails_with_slurms_reason(setup: Setup) -> None:
    """A minute's limit on a run of many long answers: Slurm stops it (state TIMEOUT)."""
    file = setup.study_file(
        "name: slow\n"
        "base:\n"
        "  n: 2000\n"
        "  max_new_tokens: 1024\n"
        "  decoder: {ignore_eos: true}\n"
        "  warmup: {count: 0}\n"
        "  baseline: {enabled: false}\n"
        "  energy: {source: none}\n"
        "executor: {kind: slurm, gpus_per_run: 0, cpus_per_run: 1, time_limit: '1'}\n"
    )
    output = setup.root / "results"
    completed = llem("study", str(file), "-o", str(output), env=setup.env)
    assert completed.returncode == 1, completed.stderr
    (entry,) = StudyManifest.load(study_dir(output)).entries
    assert entry.status == "failed"
    assert entry.error is not None
    assert re.match(rf"Slurm job {entry.slurm_job_id} ended TIMEOUT", entry.error)


def test_a_refused_submission_is_slurms_message_and_submits_nothing(setup: Setup) -> None:
    file = setup.study_file(BASE + "name: refused\n")
    output = setup.root / "results"
    completed = llem("study", str(file), "-o", str(output), "--partition", "nowhere", env=setup.env)
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1] == (
        "error: Slurm refused the study's jobs: Batch job submission failed: Invalid partition "
        "name specified"
    )
    (entry,) = StudyManifest.load(study_dir(output)).entries
    assert (entry.status, entry.slurm_job_id, entry.experiment_id) == ("pending", None, None)
    assert not [line for line in squeue(setup.env) if "llem-refused" in line]


def test_no_slurm_on_this_host_is_one_line_and_exit_2(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    file = tmp_path / "study.yaml"
    file.write_text(BASE + "name: nowhere\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    env = llem_env | {"PATH": str(empty)}
    completed = llem("study", str(file), "-o", str(tmp_path / "results"), env=env)
    assert completed.returncode == 2
    assert completed.stderr == (
        "error: no Slurm on this host: sbatch, squeue, scancel not found on PATH; run the study "
        "where Slurm's commands are (a login node), or on this machine (--executor local)\n"
    )
    assert not (tmp_path / "results").exists()
    assert os.environ.get("PATH")  # the test's own PATH is untouched


def test_a_job_that_cannot_start_is_said_with_slurms_reason(setup: Setup) -> None:
    """A held job waits for no resource: the controller says why it waits, once."""
    file = setup.study_file(
        BASE.replace("cpus_per_run: 1\n", "cpus_per_run: 1\n  extra_sbatch: [--hold]\n")
        + "name: held\n"
    )
    output = setup.root / "results"
    errors = setup.root / "stderr.txt"
    with errors.open("w") as sink:
        controller = subprocess.Popen(
            [sys.executable, "-m", "llem", "study", str(file), "-o", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=setup.env,
        )
    try:
        wait_for(lambda: "keeps job" in errors.read_text(), what="the held job to be reported")
        manifest = StudyManifest.load(study_dir(output))
        job = manifest.entries[0].slurm_job_id
        assert job is not None
        assert (
            f"[1/1] point 0 (base) cycle 0: Slurm keeps job {job} waiting: PENDING (JobHeldUser)"
            in errors.read_text()
        )
        subprocess.run(["scontrol", "release", job], env=setup.env, check=True)
        assert controller.wait(timeout=120) == 0, errors.read_text()
    finally:
        if controller.poll() is None:
            controller.kill()
    assert errors.read_text().count("keeps job") == 1
    assert [e.status for e in StudyManifest.load(study_dir(output)).entries] == ["completed"]


def test_a_job_that_can_never_start_fails_its_run_with_slurms_reason(setup: Setup) -> None:
    failing = subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", "--wrap=false"],
        capture_output=True,
        text=True,
        env=setup.env,
        check=True,
    ).stdout.strip()
    never = BASE.replace(
        "cpus_per_run: 1\n", f"cpus_per_run: 1\n  extra_sbatch: [--dependency=afterok:{failing}]\n"
    )
    file = setup.study_file(never + "name: never\n")
    output = setup.root / "results"
    completed = llem("study", str(file), "-o", str(output), env=setup.env)
    assert completed.returncode == 1, completed.stderr
    (entry,) = StudyManifest.load(study_dir(output)).entries
    assert entry.status == "failed"
    assert entry.error == (
        f"Slurm cannot start job {entry.slurm_job_id}: PENDING (DependencyNeverSatisfied); it "
        "was cancelled"
    )


def test_runs_submitted_before_their_job_ids_were_saved_are_found_by_name(setup: Setup) -> None:
    """The controller died between sbatch's answer and saving it: the resume finds the jobs
    by the array's name and follows them, running nothing twice."""
    held = BASE.replace("cpus_per_run: 1\n", "cpus_per_run: 1\n  extra_sbatch: [--hold]\n")
    file = setup.study_file(held + "name: unsaved\ncycles: 2\n")
    output = setup.root / "results"
    detached = llem("study", str(file), "-o", str(output), "--detach", env=setup.env)
    assert detached.returncode == 0, detached.stderr
    directory = study_dir(output)
    manifest = StudyManifest.load(directory)
    jobs = [e.slurm_job_id for e in manifest.entries]
    for entry in manifest.entries:  # as if the ids had never been saved
        manifest = manifest.with_entry(entry.run_index, slurm_job_id=None)
    manifest.save(directory)
    subprocess.run(["scontrol", "release", *[j for j in jobs if j]], env=setup.env, check=True)
    resumed = llem("study", "--resume", str(directory), env=setup.env)
    assert resumed.returncode == 0, resumed.stderr
    assert "to Slurm as job array" not in resumed.stderr  # nothing submitted again
    final = kept_once(directory, output / "llem.db")
    assert [e.slurm_job_id for e in final.entries] == jobs
    assert [e.status for e in final.entries] == ["completed"] * 2

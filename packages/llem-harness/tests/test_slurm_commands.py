"""What llem hands Slurm: the array of a study's runs, each job's options and its script; and
how a job's state reads. (Submitting and following real jobs: tests/test_study_slurm.py.)"""

from pathlib import Path

import pytest

from llem_harness.study.slurm import JobState, array_spec, job_script, sbatch_options
from llem_schema.study_config import SlurmExecutorConfig


@pytest.mark.parametrize(
    ("runs", "limit", "spec"),
    [
        ([0, 1, 2, 3], None, "0-3"),
        ([7, 0, 1, 3, 4], 2, "0-1,3-4,7%2"),
        ([5], None, "5"),
        ([2, 2, 9], 1, "2,9%1"),
    ],
)
def test_the_array_lists_the_runs_as_ranges(runs: list[int], limit: int | None, spec: str) -> None:
    assert array_spec(runs, limit) == spec


def test_every_job_asks_for_the_executors_resources_and_appends_to_its_log() -> None:
    executor = SlurmExecutorConfig(
        partition="gpu",
        account="lab",
        gpus_per_run=2,
        cpus_per_run=8,
        mem="64G",
        extra_sbatch=["--constraint=a100"],
    )
    options = sbatch_options(
        executor,
        job_name="llem-s_1",
        workdir=Path("/shared/s_1"),
        log_pattern=Path("/shared/s_1/runs/run_%4a.log"),
        timeout_s=3600.0,
    )
    assert options == [
        "--job-name=llem-s_1",
        "--chdir=/shared/s_1",
        "--output=/shared/s_1/runs/run_%4a.log",
        "--open-mode=append",
        "--ntasks=1",
        "--cpus-per-task=8",
        "--time=70",  # the study's timeout and 10 minutes, in minutes
        "--gpus=2",
        "--partition=gpu",
        "--account=lab",
        "--mem=64G",
        "--constraint=a100",
    ]
    chosen = sbatch_options(
        SlurmExecutorConfig(gpus_per_run=0, time_limit="1-00:00:00"),
        job_name="n",
        workdir=Path("/w"),
        log_pattern=Path("/w/l"),
        timeout_s=60.0,
    )
    assert "--time=1-00:00:00" in chosen
    assert not [option for option in chosen if option.startswith("--gpus")]


def test_the_script_runs_the_tasks_run_as_a_study_does() -> None:
    script = job_script(Path("/shared/my study/runs"), python="/venv/bin/python")
    assert script.splitlines()[-1] == (
        "exec /venv/bin/python -m llem_harness.study.child '/shared/my study/runs'"
        '/run_$(printf %04d "$SLURM_ARRAY_TASK_ID").json'
    )


def test_a_state_says_what_and_why() -> None:
    assert JobState("1_2", "PENDING", "Resources").describe() == "PENDING (Resources)"
    assert JobState("1_2", "TIMEOUT", None, "0:15").describe() == "TIMEOUT (exit 0:15)"
    assert JobState("1_2", "COMPLETED", "None").describe() == "COMPLETED"
    assert JobState("1_2", "PENDING").queued
    assert JobState("1_2", "RUNNING").active
    assert not JobState("1_2", "NODE_FAIL").active


def test_a_misspelt_executor_setting_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="partiton"):
        SlurmExecutorConfig.model_validate({"kind": "slurm", "partiton": "gpu"})
    with pytest.raises(ValidationError, match="extra_sbatch"):
        SlurmExecutorConfig(extra_sbatch=["constraint=a100"])
    with pytest.raises(ValidationError, match="--output is llem's to set"):
        SlurmExecutorConfig(extra_sbatch=["--output=/tmp/x.log"])

"""The pieces of a run across a Slurm step's tasks that need no cluster: which process is which
task (from Slurm's variables), the srun command, the process count a launch gives, and the
rendezvous itself, task 0 and a task 1 in threads of this process, over real TCP
connections. The whole run on a real cluster: tests/test_multinode.py."""

import threading
from pathlib import Path
from typing import Any

import pytest

from llem_harness.errors import UsageError, WorkerFailedError
from llem_harness.multinode import Coordinator, Follower, SlurmTask, slurm_task
from llem_harness.progress import ProgressEvent
from llem_harness.slurm_run import SrunLaunch, srun_command
from llem_schema import ExperimentConfig

STEP = {
    "SLURM_JOB_ID": "41",
    "SLURM_STEP_ID": "0",
    "SLURM_STEP_NUM_TASKS": "4",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "1",
}


def test_a_task_of_an_srun_step_of_several_tasks_is_one_process_of_the_run() -> None:
    assert slurm_task(STEP) == SlurmTask(rank=3, count=4, local_rank=1, step="41.0.0")
    # a batch script (no step), srun -n 1, and no Slurm at all: a run of its own
    batch = {k: v for k, v in STEP.items() if not k.startswith("SLURM_STEP")}
    assert slurm_task(batch) is None
    assert slurm_task(STEP | {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) is None
    assert slurm_task({}) is None
    assert slurm_task(STEP | {"SLURM_PROCID": "x"}) is None


def test_srun_command_asks_for_one_task_per_gpu() -> None:
    launch = SrunLaunch(nodes=2, gpus_per_node=4, partition="gpu", time_limit="01:00:00")
    command = srun_command(launch, 8, Path("/r/.staging/srun-x.json"), python="/py")
    assert command == [
        "srun", "--nodes=2", "--ntasks-per-node=4", "--kill-on-bad-exit=0",
        "--job-name=llem-run", "--gpus-per-node=4", "--partition=gpu", "--time=01:00:00",
        "/py", "-m", "llem_harness.slurm_run", "/r/.staging/srun-x.json",
    ]  # fmt: skip


def test_a_launch_gives_the_process_count_or_says_why_not() -> None:
    config = ExperimentConfig()
    assert SrunLaunch(nodes=2, gpus_per_node=4).processes(config) == 8
    assert SrunLaunch(nodes=1).processes(config) == 1
    two = ExperimentConfig(num_processes=2)
    assert SrunLaunch(nodes=2).processes(two) == 2
    with pytest.raises(UsageError, match="num_processes is 2, which 3 nodes cannot share"):
        SrunLaunch(nodes=3).processes(two)
    with pytest.raises(UsageError, match="--nodes must be at least 1, not 0"):
        SrunLaunch(nodes=0).processes(config)


def task(rank: int) -> SlurmTask:
    return SlurmTask(rank=rank, count=2, local_rank=rank, step="7.0.0")


def test_task_0_says_which_tasks_did_not_join(tmp_path: Path) -> None:
    with Coordinator(task(0), tmp_path) as coordinator:
        coordinator.publish("tiny_echo_2026-01-01T00-00-00_abcdef")
        assert coordinator.file.stat().st_mode & 0o777 == 0o600  # the key: its user's only
        with pytest.raises(WorkerFailedError) as caught:
            coordinator.join(timeout_s=0.3)
    assert str(caught.value) == (
        f"processes 1 of 2 did not join process 0 in time (they look for "
        f"slurm-7.0.0.rendezvous in {tmp_path / '.staging'}: is the results directory on a "
        "filesystem every node shares?)"
    )
    assert not coordinator.file.exists()


def test_a_task_without_task_0_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        Follower(task(1), tmp_path, timeout_s=0.3)
    assert str(caught.value) == (
        f"process 1 found no process 0 to join within 0.3 s: it looks for "
        f"{tmp_path / '.staging' / 'slurm-7.0.0.rendezvous'}; is the results directory on a "
        "filesystem every node shares?"
    )


def follow(tmp_path: Path, then: str, seen: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        follower = Follower(task(1), tmp_path, timeout_s=10)
        seen["experiment_id"] = follower.experiment_id
        seen["hosts"] = follower.hosts
        follower.progress(ProgressEvent("note", message="hello from 1"))
        if then == "fail":
            follower.fail("RuntimeError: out of memory")
            follower.end()
            return
        follower.barrier()
        seen["saved"] = follower.wait()["saved"]
        follower.end()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_tasks_meet_at_barriers_and_task_1_gets_what_task_0_saved(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    events: list[ProgressEvent] = []
    with Coordinator(task(0), tmp_path, events.append) as coordinator:
        coordinator.publish("tiny_echo_2026-01-01T00-00-00_abcdef")
        thread = follow(tmp_path, "finish", seen)
        hosts = coordinator.join(timeout_s=10)
        coordinator.wait()
        coordinator.finish(tmp_path / "saved")
        thread.join(10)
    assert seen == {
        "experiment_id": "tiny_echo_2026-01-01T00-00-00_abcdef",
        "hosts": hosts,
        "saved": str(tmp_path / "saved"),
    }
    assert sorted(hosts) == [0, 1]
    assert [e.message for e in events] == ["process 1: hello from 1"]


def test_a_failing_task_stops_task_0_with_its_reason(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    with Coordinator(task(0), tmp_path) as coordinator:
        coordinator.publish("tiny_echo_2026-01-01T00-00-00_abcdef")
        thread = follow(tmp_path, "fail", seen)
        coordinator.join(timeout_s=10)
        with pytest.raises(WorkerFailedError) as caught:
            coordinator.wait()
        thread.join(10)
    assert str(caught.value) == "process 1 failed: RuntimeError: out of memory"
    assert caught.value.process_index == 1

"""The pieces of a run across a Slurm step's tasks that need no cluster: which process is which
task (from Slurm's variables), the srun command, the process count a launch gives, and the
rendezvous itself, task 0 and a task 1 in threads of this process, over real TCP
connections. The whole run on a real cluster: tests/test_multinode.py."""

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llem_harness.errors import UsageError, WorkerFailedError
from llem_harness.multinode import (
    Coordinator,
    Follower,
    SlurmTask,
    announce_failure,
    slurm_task,
)
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


ID = "tiny_echo_2026-01-01T00-00-00_abcdef"


def task(rank: int) -> SlurmTask:
    return SlurmTask(rank=rank, count=2, local_rank=rank, step="7.0.0")


def test_task_0_says_which_tasks_did_not_join(tmp_path: Path) -> None:
    with Coordinator(task(0), tmp_path, ID) as coordinator:
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
        if then == "fail after join":
            time.sleep(0.5)  # task 0 is measuring by now
            follower.fail("RuntimeError: oom")
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
    with Coordinator(task(0), tmp_path, ID, events.append) as coordinator:
        thread = follow(tmp_path, "finish", seen)
        hosts = coordinator.join(timeout_s=10)
        coordinator.wait()
        coordinator.finish(tmp_path / "saved")
        thread.join(10)
    assert seen == {
        "experiment_id": ID,
        "hosts": hosts,
        "saved": str(tmp_path / "saved"),
    }
    assert sorted(hosts) == [0, 1]
    assert [e.message for e in events] == ["process 1: hello from 1"]


def test_a_failing_task_stops_task_0_with_its_reason(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    with Coordinator(task(0), tmp_path, ID) as coordinator:
        thread = follow(tmp_path, "fail", seen)
        coordinator.join(timeout_s=10)
        with pytest.raises(WorkerFailedError) as caught:
            coordinator.wait()
        thread.join(10)
    assert str(caught.value) == "process 1 failed: RuntimeError: out of memory"
    assert caught.value.process_index == 1


def measure_until_stopped(seconds: float = 20.0) -> float:
    """Stand in for a measurement in pure Python (a backend's run); how long it ran."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_task_failing_while_task_0_measures_stops_it_at_once(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    with Coordinator(task(0), tmp_path, ID) as coordinator:
        thread = follow(tmp_path, "fail after join", seen)
        coordinator.join(timeout_s=10)
        started = time.monotonic()
        failed = pytest.raises(WorkerFailedError, match=r"^process 1 failed: RuntimeError: oom$")
        with failed, coordinator.measuring():
            measure_until_stopped()
        assert time.monotonic() - started < 5
        thread.join(10)


def test_a_measuring_task_stops_at_once_when_task_0_is_gone(tmp_path: Path) -> None:
    joined = threading.Event()
    gone = threading.Event()

    def task_0() -> None:
        with Coordinator(task(0), tmp_path, ID) as coordinator:
            coordinator.join(timeout_s=10)
            joined.set()
            gone.wait(10)  # then its connections close, as when its process is killed

    thread = threading.Thread(target=task_0)
    thread.start()
    follower = Follower(task(1), tmp_path, timeout_s=10)
    assert joined.wait(10)
    threading.Timer(0.5, gone.set).start()  # while task 1 measures
    started = time.monotonic()
    gone_now = pytest.raises(WorkerFailedError, match=r"^process 0 \(on .+\) is gone: killed, or")
    with gone_now, follower.measuring():
        measure_until_stopped()
    assert time.monotonic() - started < 5
    follower.end()
    thread.join(10)


def test_task_0_failing_before_the_others_join_tells_them_why(tmp_path: Path) -> None:
    announce_failure(tmp_path, task(0), "ConfigError: no backend 'vllm' is installed")
    with pytest.raises(WorkerFailedError) as caught:
        Follower(task(1), tmp_path, timeout_s=10)
    assert str(caught.value) == (
        "process 0 failed before the run started: ConfigError: no backend 'vllm' is installed"
    )


def test_a_rendezvous_file_others_could_have_written_is_not_trusted(tmp_path: Path) -> None:
    with Coordinator(task(0), tmp_path, ID) as coordinator:
        coordinator.file.chmod(0o644)  # as if planted by someone else who can write there
        with pytest.raises(UsageError, match=r"found no process 0 to join within 0\.5 s"):
            Follower(task(1), tmp_path, timeout_s=0.5)


def test_every_task_hears_the_result_is_saved_however_fast_the_others_end(
    tmp_path: Path,
) -> None:
    """A task that ends as soon as it hears must not cut the others off the last barrier."""
    for attempt in range(5):
        step = f"9.{attempt}.0"
        saved: list[object] = []

        def run(rank: int, step: str = step, saved: list[object] = saved) -> None:
            follower = Follower(SlurmTask(rank, 4, rank, step), tmp_path, timeout_s=10)
            follower.barrier()
            saved.append(follower.wait()["saved"])
            follower.end()

        with Coordinator(SlurmTask(0, 4, 0, step), tmp_path, ID) as coordinator:
            threads = [threading.Thread(target=run, args=(rank,)) for rank in (1, 2, 3)]
            for thread in threads:
                thread.start()
            coordinator.join(timeout_s=10)
            coordinator.wait()
            coordinator.finish(tmp_path / "saved")
            for thread in threads:
                thread.join(10)
        assert saved == [str(tmp_path / "saved")] * 3, attempt

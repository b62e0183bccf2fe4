"""One experiment across the tasks of a Slurm job step, on a real one-node cluster
(tests/conftest.py): `srun -n 2 llem run` and `llem run --launcher slurm`, each task one
process of the run, joined through llem's rendezvous, with torch.distributed's c10d store
(``init_method="env://"``) reachable from a backend. Task 0 alone writes the store and the
result; a failing or killed task stops the run with its reason; Ctrl-C saves what every task
finished.

The backend here is the example plugin's echo backend, installed for real (a ``.dist-info``
on ``PYTHONPATH``, which srun's tasks inherit), with a variant whose ``load`` initialises a
gloo process group and all-reduces the ranks.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Protocol

import pytest

from llem_schema import ExperimentResult
from llem_store import ExperimentFilter, ResultStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="Debian's Slurm daemons"),
]

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "backend-plugin" / "src"

COLLECTIVE = """
    import os
    import time

    import torch
    import torch.distributed as dist

    from llem_echo import EchoBackend


    class Collective(EchoBackend):
        @property
        def name(self):
            return "collective"

        def load(self, config, context):
            info = super().load(config, context)
            if os.environ.get("LLEM_TEST_FAIL_LOAD") == os.environ["RANK"]:
                raise RuntimeError(f"no GPU left for process {context.process_index}")
            dist.init_process_group("gloo", init_method="env://")
            total = torch.tensor([context.process_index + 1])
            dist.all_reduce(total)
            dist.destroy_process_group()
            seen = {
                "all_reduce": int(total.item()),
                "local_world_size": int(os.environ["LOCAL_WORLD_SIZE"]),
                "master_addr": os.environ["MASTER_ADDR"],
            }
            return info.model_copy(update={"details": info.details | seen})

        def run(self, requests):
            if os.environ.get("LLEM_TEST_KILL") == os.environ["RANK"]:
                os.kill(os.getpid(), 9)
            if os.environ.get("LLEM_TEST_FAIL_RUN") == os.environ["RANK"]:
                raise RuntimeError(f"process {os.environ['RANK']} ran out of memory")
            yield from super().run(requests)
"""


class Cluster(Protocol):
    @property
    def env(self) -> dict[str, str]: ...


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("site")
    info = directory / "llem_test_backends-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llem-test-backends\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[llem.backends]\necho = llem_echo:EchoBackend\n"
        "collective = collective_backend:Collective\n"
    )
    (directory / "collective_backend.py").write_text(textwrap.dedent(COLLECTIVE))
    return directory


@pytest.fixture
def env(slurm_cluster: Cluster, site: Path) -> dict[str, str]:
    path = os.pathsep.join([str(site), str(EXAMPLE_PLUGIN), os.environ.get("PYTHONPATH", "")])
    return slurm_cluster.env | {"PYTHONPATH": path, "LLEM_SIMULATED_GPUS": "2"}


def run_args(results: Path, *extra: str, delay_ms: int = 1, n: int = 8) -> list[str]:
    return [
        "run", "--backend", "collective", "-n", str(n), "--max-new-tokens", "3",
        "--no-baseline", "-o", str(results), "--set", f"collective.token_delay_ms={delay_ms}",
        "--set", "warmup.count=1", *extra,
    ]  # fmt: skip


def llem(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def srun(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["srun", "--ntasks=2", sys.executable, "-m", "llem", *args],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


def rows(results: Path) -> list[tuple[str, str, str | None]]:
    with ResultStore(results / "llem.db", create=False) as store:
        found = store.list_experiments(ExperimentFilter(statuses=None))
    return [(row.experiment_id, row.status, row.error) for row in found]


def details(result: ExperimentResult, key: str) -> list[object]:
    """What each process's backend said about ``key`` (its load's details)."""
    infos = [p.model_info for p in result.process_results]
    return [None if info is None else info.details[key] for info in infos]


def saved(results: Path) -> list[ExperimentResult]:
    return [ExperimentResult.from_json(p.parent) for p in results.glob("*/result.json")]


def test_srun_tasks_run_one_experiment_through_the_c10d_rendezvous(
    env: dict[str, str], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    done = srun(*run_args(results), env=env)
    assert done.returncode == 0, done.stderr
    # task 0 reports; task 1 prints nothing
    assert done.stdout.count("\nid: ") == 1
    (result,) = saved(results)
    assert done.stdout.rstrip().endswith(f"id: {result.experiment_id}")
    host = socket.gethostname()
    processes = result.process_results
    assert [p.process_index for p in processes] == [0, 1]
    assert [p.hostname for p in processes] == [host, host]  # the host of every process
    # torch.distributed joined both processes through c10d's store on task 0's host
    assert details(result, "all_reduce") == [3, 3]
    assert details(result, "master_addr") == [host, host]
    assert details(result, "local_world_size") == [2, 2]
    # each process metered its own (simulated) GPU; each device counted once
    gpus = [[d.uuid for d in p.devices] for p in processes]
    assert len(gpus[0]) == len(gpus[1]) == 1
    assert gpus[0] != gpus[1]
    assert sorted(result.energy_per_device_j) == sorted(gpus[0] + gpus[1])
    assert result.aggregation.complete
    assert sorted(i for p in processes for i in (r.request_index for r in p.requests)) == list(
        range(8)
    )
    # one writer: one row, the rendezvous and the staging gone
    assert rows(results) == [(result.experiment_id, "completed", None)]
    assert not (results / ".staging").exists()


def test_launcher_slurm_starts_the_tasks_with_srun_and_reports_as_llem_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    done = llem(*run_args(results), "--launcher", "slurm", "--num-processes", "2", env=env)
    assert done.returncode == 0, done.stderr
    (result,) = saved(results)
    assert done.stdout.rstrip().splitlines()[-1] == f"id: {result.experiment_id}"
    assert "throughput" in done.stdout  # the summary, as llem run prints it
    assert result.aggregation.num_processes == 2
    assert details(result, "all_reduce") == [3, 3]
    assert rows(results) == [(result.experiment_id, "completed", None)]
    assert not (results / ".staging").exists()  # the spec and the rendezvous removed


@pytest.mark.parametrize("where", ["load", "run"])
def test_a_failing_task_is_named_and_stops_the_others(
    env: dict[str, str], tmp_path: Path, where: str
) -> None:
    """In load, process 0 waits in torch.distributed's rendezvous (native code: it is ended
    after STOP_GRACE_S); in run, it is measuring its 100 requests of 0.6 s each, and stops
    at once."""
    results = tmp_path / "results"
    started = time.monotonic()
    done = llem(
        *run_args(results, delay_ms=200, n=200),
        "--launcher", "slurm", "--num-processes", "2",
        env=env | {f"LLEM_TEST_FAIL_{where.upper()}": "1"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    reason = {
        "load": "process 1 failed: RuntimeError: no GPU left for process 1",
        "run": "process 1 failed: RuntimeError: process 1 ran out of memory",
    }[where]
    assert f"error: {reason}; no process had finished" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 45  # not the 60 s process 0's share takes
    ((_, status, error),) = rows(results)
    assert (status, error) == ("failed", reason)
    assert saved(results) == []


def test_a_killed_task_is_noticed(env: dict[str, str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = llem(
        *run_args(results, delay_ms=100, n=40),
        "--launcher", "slurm", "--num-processes", "2",
        env=env | {"LLEM_TEST_KILL": "1"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    reason = (
        f"process 1 (on {socket.gethostname()}) ended without a word: killed, or its node was lost"
    )
    assert f"error: {reason}" in done.stderr
    ((_, status, error),) = rows(results)
    assert (status, error) == ("failed", reason)


def test_ctrl_c_saves_what_every_task_finished(env: dict[str, str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "llem", *run_args(results, delay_ms=150, n=200),
         "--launcher", "slurm", "--num-processes", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:  # plain progress lines: stderr is no terminal
        if line.startswith("inference: "):
            break  # under way on both tasks: a stage's count adds up over the processes
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    (result,) = saved(results)
    assert [p.process_index for p in result.process_results] == [0, 1]
    assert all(p.interrupted for p in result.process_results)
    assert not result.aggregation.complete
    assert result.request_metrics is not None
    assert 0 < result.request_metrics.requests < 200
    assert f"what finished is saved, marked incomplete, in {results / result.experiment_id}" in (
        stderr
    )
    ((_, status, _),) = rows(results)
    assert status == "incomplete"


def test_errors_before_anything_starts(env: dict[str, str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    mismatch = llem(
        *run_args(results), "--launcher", "slurm", "--nodes", "1", "--gpus-per-node", "2",
        "--num-processes", "3", env=env,
    )  # fmt: skip
    assert mismatch.returncode == 2
    assert (
        "error: num_processes is 3, but 1 node(s) with 2 GPU(s) each run 2 processes, one per "
        "GPU: give --num-processes 2, or leave num_processes out"
    ) in mismatch.stderr
    local = llem(*run_args(results), "--nodes", "2", env=env)
    assert local.returncode == 2
    assert "error: --nodes only apply with --launcher slurm" in local.stderr
    refused = llem(
        *run_args(results), "--launcher", "slurm", "--num-processes", "2", "--partition",
        "nowhere", env=env,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "error: Slurm did not start the run: " in refused.stderr
    assert "invalid partition" in refused.stderr.lower()
    no_slurm = llem(
        *run_args(results), "--launcher", "slurm", "--num-processes", "2",
        env=env | {"PATH": str(Path(sys.executable).parent)},
    )  # fmt: skip
    assert no_slurm.returncode == 2
    assert "error: no Slurm on this host: srun is not on PATH" in no_slurm.stderr
    # nothing was recorded, nothing left behind
    assert not (results / "llem.db").exists()
    assert not (results / ".staging").exists()
    mismatch_in_srun = srun(*run_args(results), "--num-processes", "3", env=env)
    assert mismatch_in_srun.returncode == 2
    assert (
        "num_processes is 3, but srun started 2 tasks, one process each: leave num_processes "
        "out, or start 3 tasks"
    ) in mismatch_in_srun.stderr

"""``measure`` from Python: the whole path (resolve, launch, energy window, stage, aggregate,
save, index) with backend objects handed in directly, with the installed PyTorch backend on
the tiny model, and with NVML faked at its boundary where energy is the subject.

The backend objects are the example plugin's ``EchoBackend`` (``examples/backend-plugin``),
imported from its source tree: a third-party backend, registered nowhere here.
"""

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llem_energy import RaplReader, RaplUnavailableError
from llem_energy import nvml as nvml_module
from llem_energy.testing import FakeGpu, FakeNvml
from llem_harness import (
    HarnessError,
    ProgressEvent,
    RunFailedError,
    RunInterruptedError,
    UsageError,
    measure,
    run_experiment,
)
from llem_harness.errors import exit_code_for
from llem_schema import (
    ConfigError,
    ExperimentConfig,
    ExperimentResult,
    ModelInfo,
    Request,
    RequestTiming,
    WorkerContext,
)
from llem_store import ResultStore

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[3] / "examples" / "backend-plugin" / "src"
if str(EXAMPLE_PLUGIN) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_PLUGIN))

from llem_echo import EchoBackend  # noqa: E402 - from the example's source tree, above


def echo_config(tmp_path: Path, **settings: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "backend": "echo",
        "n": 6,
        "max_new_tokens": 4,
        "warmup": {"count": 1},
        "energy": {"source": "none"},
        "output_dir": str(tmp_path / "results"),
        "echo": {"batch_size": 2, "token_delay_ms": 0.5},
    }
    return ExperimentConfig.model_validate(data | settings)


def test_measure_returns_the_result_from_json_reads_and_indexes_it(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = measure(echo_config(tmp_path), backend=EchoBackend(), progress=events.append)
    (directory,) = [
        p for p in (tmp_path / "results").iterdir() if p.is_dir() and not p.name.startswith(".")
    ]
    assert result == ExperimentResult.from_json(directory)
    assert result.backend == "echo"
    assert result.backend_version == "echo 0.1.0"
    assert result.effective_config["echo"] == {"batch_size": 2, "token_delay_ms": 0.5}
    (process,) = result.process_results
    assert [r.request_index for r in process.requests] == list(range(6))
    assert [r.batch_index for r in process.requests] == [0, 0, 1, 1, 2, 2]
    assert process.model_info is not None
    assert process.model_info.device == "cpu"
    assert result.latency.ttft is not None
    with ResultStore(tmp_path / "results" / "llem.db", create=False) as store:
        assert store.get(result.experiment_id).status == "completed"
    inference = [e for e in events if e.stage == "inference"]
    assert [e.kind for e in inference] == ["start", *["advance"] * 6, "end"]
    assert (inference[0].total, inference[-1].done) == (6, 6)
    assert not (tmp_path / "results" / ".staging" / result.experiment_id).exists()


def test_prompts_longer_than_max_input_tokens_are_a_warning_in_the_result(tmp_path: Path) -> None:
    """Built-in prompts the backend cuts to max_input_tokens are said, not cut silently."""
    result = measure(echo_config(tmp_path, max_input_tokens=8), backend=EchoBackend())
    (truncated,) = [w for w in result.measurement_warnings if w.code == "prompts_truncated"]
    assert truncated.message.startswith("3 of the 6 prompts (builtin) are longer than ")
    assert truncated.figures["max_input_tokens"] == 8
    fits = measure(echo_config(tmp_path, max_input_tokens=4096), backend=EchoBackend())
    assert "prompts_truncated" not in {w.code for w in fits.measurement_warnings}


def test_store_false_writes_no_store_and_a_path_chooses_one(tmp_path: Path) -> None:
    measure(echo_config(tmp_path), backend=EchoBackend(), store=False)
    assert not (tmp_path / "results" / "llem.db").exists()
    elsewhere = tmp_path / "index" / "mine.db"
    result = measure(echo_config(tmp_path), backend=EchoBackend(), store=elsewhere)
    with ResultStore(elsewhere, create=False) as store:
        assert store.get(result.experiment_id).result_path is not None
    assert not (tmp_path / "results" / "llem.db").exists()


def test_a_backend_object_takes_the_backend_of_a_config_that_leaves_it_unset(
    tmp_path: Path,
) -> None:
    config = ExperimentConfig(n=2, max_new_tokens=2, output_dir=str(tmp_path))
    assert config.backend == "pytorch"
    result = measure(config, backend=EchoBackend(), store=False)
    assert result.backend == "echo"
    assert result.effective_config["echo"] == {"batch_size": 4, "token_delay_ms": 1.0}


def test_a_backend_object_is_refused_where_it_cannot_be_used(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        measure(echo_config(tmp_path, backend="pytorch"), backend=EchoBackend())
    assert str(caught.value) == (
        "the config selects backend 'pytorch' but the backend object given is 'echo'"
    )
    with pytest.raises(UsageError) as caught:
        measure(echo_config(tmp_path, num_processes=2), backend=EchoBackend())
    assert str(caught.value) == (
        "a backend object runs in this process only, but num_processes is 2: register its "
        "class under the entry-point group llem.backends to run it in several processes"
    )
    assert exit_code_for(caught.value) == 2
    assert not (tmp_path / "results").exists()


class Misnamed(EchoBackend):
    @property
    def name(self) -> str:
        return "My Backend"


def test_a_backend_object_with_a_name_no_config_can_hold_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        measure(ExperimentConfig(output_dir=str(tmp_path)), backend=Misnamed())
    assert str(caught.value).startswith("config key 'backend': String should match pattern")
    assert "\n" not in str(caught.value)


def test_a_misspelt_backend_setting_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    config = echo_config(tmp_path, echo={"batch_sise": 2})
    with pytest.raises(ConfigError) as caught:
        measure(config, backend=EchoBackend())
    assert str(caught.value) == (
        "unknown config key 'echo.batch_sise'; did you mean 'batch_size'? "
        "(allowed under echo: batch_size, token_delay_ms)"
    )
    assert exit_code_for(caught.value) == 2
    assert not (tmp_path / "results").exists()


class FailingLoad(EchoBackend):
    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")


def test_a_backend_that_raises_in_load_fails_the_run_and_keeps_nothing(tmp_path: Path) -> None:
    with pytest.raises(RunFailedError) as caught:
        measure(echo_config(tmp_path), backend=FailingLoad())
    assert str(caught.value) == (
        "process 0 failed: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB; "
        "no process had finished, nothing was kept"
    )
    assert not caught.value.staged
    assert exit_code_for(caught.value) == 1
    experiment_id = caught.value.experiment_id
    assert not (tmp_path / "results" / ".staging" / experiment_id).exists()
    with ResultStore(tmp_path / "results" / "llem.db", create=False) as store:
        failed = store.get(experiment_id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("process 0 failed: RuntimeError: CUDA out of memory")


class TwiceTheFirst(EchoBackend):
    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        timings = list(super().run(requests))
        yield from [timings[0], *timings]


def test_a_backend_must_time_each_request_exactly_once(tmp_path: Path) -> None:
    with pytest.raises(RunFailedError) as caught:
        measure(echo_config(tmp_path), backend=TwiceTheFirst())
    assert caught.value.reason == (
        "process 0 failed: backend 'echo' returned timings for requests 0, 0, 1, 2, 3, 4, 5 but "
        "was given 0..5: each request needs exactly one timing"
    )
    assert isinstance(caught.value.__cause__, HarnessError)


class InterruptedAfterThree(EchoBackend):
    """Ctrl-C arrives while the backend waits, after three timings (a batch loop: it lets
    the interruption go at once)."""

    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        for count, timing in enumerate(super().run(requests)):
            if count == 3:
                raise KeyboardInterrupt
            yield timing


class FinishesInFlight(EchoBackend):
    """Ctrl-C lands in the harness while the backend is paused at a ``yield``; the backend
    yields the two requests it has in flight, then lets the interruption go."""

    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        timings = list(super().run(requests))
        try:
            yield timings[0]
            raise AssertionError("the harness goes on after Ctrl-C")  # pragma: no cover
        except KeyboardInterrupt:
            yield from timings[1:3]
            raise


def test_ctrl_c_saves_what_finished_marked_incomplete(tmp_path: Path) -> None:
    with pytest.raises(RunInterruptedError) as caught:
        measure(echo_config(tmp_path), backend=InterruptedAfterThree())
    saved = caught.value.saved
    assert saved is not None
    assert (
        str(caught.value) == f"interrupted; what finished is saved, marked incomplete, in {saved}"
    )
    assert exit_code_for(caught.value) == 130
    result = ExperimentResult.from_json(saved)
    assert [r.request_index for r in result.process_results[0].requests] == [0, 1, 2]
    assert result.process_results[0].interrupted
    assert (result.aggregation.complete, result.aggregation.interrupted_processes) == (False, [0])
    assert (
        "interrupted: 3 of 6 requests finished before the run was stopped; the others were not "
        "sent or did not finish"
    ) in [w.message for w in result.measurement_warnings]
    assert not (tmp_path / "results" / ".staging" / caught.value.experiment_id).exists()
    with ResultStore(tmp_path / "results" / "llem.db", create=False) as store:
        assert store.get(caught.value.experiment_id).status == "incomplete"


def test_ctrl_c_in_the_harness_lets_the_backend_finish_what_is_in_flight(
    tmp_path: Path,
) -> None:
    def progress(event: ProgressEvent) -> None:
        if (event.kind, event.stage) == ("advance", "inference"):
            raise KeyboardInterrupt  # lands in the harness, between two timings

    with pytest.raises(RunInterruptedError) as caught:
        measure(echo_config(tmp_path), backend=FinishesInFlight(), progress=progress)
    assert caught.value.saved is not None
    result = ExperimentResult.from_json(caught.value.saved)
    assert [r.request_index for r in result.process_results[0].requests] == [0, 1, 2]


def test_ctrl_c_before_any_request_finished_keeps_nothing(tmp_path: Path) -> None:
    class AtOnce(EchoBackend):
        def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
            for _ in requests:  # Ctrl-C as the first request is sent
                raise KeyboardInterrupt
            yield from ()

    with pytest.raises(RunInterruptedError) as caught:
        measure(echo_config(tmp_path), backend=AtOnce())
    assert str(caught.value) == "interrupted; no process had finished, nothing was kept"
    assert caught.value.saved is None
    with ResultStore(tmp_path / "results" / "llem.db", create=False) as store:
        assert store.get(caught.value.experiment_id).status == "failed"


class PlacedOn(EchoBackend):
    """An echo backend that says it placed the model on the GPUs ``uuids``."""

    def __init__(self, *uuids: str) -> None:
        super().__init__()
        self.uuids = list(uuids)

    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        super().load(config, context)
        return ModelInfo(
            model=config.model,
            num_parameters=0,
            dtype="none",
            device="cuda:0",
            device_indices=list(range(len(self.uuids))),
            device_uuids=self.uuids,
        )


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeNvml:
    """NVML sees GPU-a as index 0 and GPU-b as index 1; the backends below use the CUDA
    numbering of a process that sees only GPU-b (its cuda:0), as CUDA_VISIBLE_DEVICES=1
    or the default FASTEST_FIRST order can make it."""
    fake = FakeNvml([FakeGpu(uuid="GPU-a", power_w=300.0), FakeGpu(uuid="GPU-b", power_w=90.0)])
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    return fake


def metered(tmp_path: Path, backend: EchoBackend, **energy: Any) -> ExperimentResult:
    config = echo_config(
        tmp_path,
        energy={"source": "nvml", "sample_rate_hz": 100} | energy,
        baseline={"enabled": False},
        echo={"batch_size": 2, "token_delay_ms": 20},
    )
    return measure(config, backend=backend, store=False)


def test_a_process_is_metered_on_the_gpu_it_used_by_uuid(
    two_gpus: FakeNvml, tmp_path: Path
) -> None:
    result = metered(tmp_path, PlacedOn("GPU-b"))
    assert list(result.energy_per_device_j) == ["GPU-b"]
    (process,) = result.process_results
    assert [(d.uuid, d.index) for d in process.devices] == [("GPU-b", 1)]  # NVML's index
    assert process.model_info is not None
    assert process.model_info.device_indices == [0]  # the process's own CUDA numbering
    energy_j = result.energy_per_device_j["GPU-b"]
    assert 0.5 * 90.0 * result.duration_s < energy_j < 2 * 90.0 * result.duration_s  # not 300 W


def test_a_process_whose_model_spans_two_gpus_is_metered_on_both(
    two_gpus: FakeNvml, tmp_path: Path
) -> None:
    result = metered(tmp_path, PlacedOn("GPU-b", "GPU-a"))
    assert sorted(result.energy_per_device_j) == ["GPU-a", "GPU-b"]
    assert result.multi_gpu is not None
    assert result.multi_gpu.num_gpus == 2


def test_energy_devices_names_the_gpus_of_another_process(
    two_gpus: FakeNvml, tmp_path: Path
) -> None:
    on_cpu = metered(tmp_path, EchoBackend(), devices=[0])  # a server's GPU, say
    assert list(on_cpu.energy_per_device_j) == ["GPU-a"]
    every = metered(tmp_path, EchoBackend(), devices="all")
    assert sorted(every.energy_per_device_j) == ["GPU-a", "GPU-b"]


def no_rapl(cls: type[RaplReader], root: Path) -> RaplReader:
    raise RaplUnavailableError(f"no {root}: RAPL is not exposed here")


def test_a_run_on_the_cpu_meters_no_gpu_of_its_host(
    two_gpus: FakeNvml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RaplReader, "open", classmethod(no_rapl))  # this host: GPUs only
    config = echo_config(tmp_path, energy={"source": "auto"}, baseline={"enabled": False})
    result = measure(config, backend=EchoBackend(), store=False)
    assert result.total_energy_j is None  # the host's GPUs are no part of it
    (process,) = result.process_results
    assert [d.kind for d in process.devices] == ["cpu"]


def test_host_energy_is_metered_by_the_first_process_of_each_host_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llem_energy.testing import write_rapl_zone
    from llem_harness.progress import Stages
    from llem_harness.worker import measure_process

    powercap = tmp_path / "powercap"
    write_rapl_zone(powercap, "intel-rapl:0", name="package-0", energy_uj=1_000_000)
    opened = RaplReader.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(RaplReader, "open", classmethod(lambda cls, _: opened(cls, powercap)))
    config = echo_config(tmp_path, energy={"source": "rapl"}, baseline={"enabled": False})

    def domains(local_index: int) -> list[str]:
        context = WorkerContext(
            process_index=local_index, num_processes=2, local_index=local_index, local_count=2
        )
        raw = measure_process(
            config,
            f"exp-{local_index}",
            backend=EchoBackend(),
            results_dir=tmp_path / "results",
            context=context,
            stages=Stages(),
        )
        return [e.domain for e in raw.energy]

    assert domains(0) == ["cpu_package"]
    assert domains(1) == []  # the host's energy is the first process's to meter


def test_the_installed_pytorch_backend_measures_the_tiny_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    config = ExperimentConfig.model_validate(
        {
            "n": 3,
            "max_new_tokens": 3,
            "warmup": {"count": 1},
            "energy": {"source": "none"},
            "output_dir": str(tmp_path / "results"),
            "pytorch": {"batch_size": 2},
        }
    )
    measured = run_experiment(config)
    assert measured.result == ExperimentResult.from_json(measured.directory)
    assert measured.result.backend == "pytorch"
    assert measured.result.effective_config["pytorch"] == {
        "batch_size": 2,
        "attn_implementation": None,
        "torch_compile": False,
    }
    (process,) = measured.result.process_results
    assert [r.batch_index for r in process.requests] == [0, 0, 1]
    assert process.model_info is not None
    assert process.model_info.revision == "llem-tiny-v2-seed0"
    assert process.peak_memory_source == "rss"
    assert measured.not_indexed is None
    snapshot = measured.result.environment_snapshot
    assert snapshot is not None
    assert {"llem-harness", "llem-backend-pytorch", "torch"} <= set(snapshot.package_versions)


def test_which_compute_processes_are_the_runs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from llem_harness import worker
    from llem_schema import ModelInfo, WorkerContext

    def info(unknown: bool) -> ModelInfo:
        return ModelInfo(
            model="m", num_parameters=0, dtype="float32", device="cpu", devices_unknown=unknown
        )

    one = WorkerContext(process_index=0, num_processes=1, local_index=0, local_count=1)
    two = WorkerContext(process_index=1, num_processes=2, local_index=1, local_count=2)
    monkeypatch.setattr(worker, "in_container", lambda: False)
    assert os.getpid() in (worker._run_pids(info(False), one)() or set())
    siblings = worker._run_pids(info(False), two)() or set()
    assert {os.getppid(), os.getpid()} <= siblings  # the launcher's tree
    # a server llem only sends to: which processes are the run's cannot be told
    assert worker._run_pids(info(True), one)() is None
    monkeypatch.setattr(worker, "in_container", lambda: True)  # NVML's PIDs are the host's
    assert worker._run_pids(info(False), one)() is None

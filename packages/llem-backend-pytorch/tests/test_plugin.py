"""PyTorchBackend as a plugin: registered, conforming, prepared before and loaded in a worker."""

import socket
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

import llem_backend_pytorch.backend
import llem_backend_pytorch.loading
from llem_backend_pytorch import (
    BackendStateError,
    ModelNotFoundError,
    PyTorchBackend,
    ensure_tiny_model,
)
from llem_schema import ConfigError, ExperimentConfig, ModelInfo, WorkerContext

ConfigFactory = Callable[..., ExperimentConfig]


def test_the_entry_point_names_the_backend_class() -> None:
    found = entry_points(group="llem.backends", name="pytorch")
    assert [plugin.value for plugin in found] == ["llem_backend_pytorch:PyTorchBackend"]
    (plugin,) = found
    assert plugin.load() is PyTorchBackend


@pytest.fixture
def no_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model or tokenizer fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("prepare loaded a model or tokenizer")

    monkeypatch.setattr(llem_backend_pytorch.backend, "_model_from", refuse)
    monkeypatch.setattr(llem_backend_pytorch.backend, "tokenizer_from", refuse)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.usefixtures("no_load")
def test_prepare_fails_for_a_missing_model_directory_before_any_load(
    backend: PyTorchBackend, make_config: ConfigFactory, tmp_path: Path, no_network: list[object]
) -> None:
    missing = tmp_path / "models" / "nowhere"
    with pytest.raises(ModelNotFoundError) as caught:
        backend.prepare(make_config(model=str(missing)))
    assert str(caught.value) == (
        f"model directory {missing} does not exist; point model to a directory holding "
        "config.json and the weights, or to a hub id already in the local cache"
    )
    with pytest.raises(BackendStateError, match="call load"):
        backend.model  # noqa: B018
    assert no_network == []


@pytest.mark.usefixtures("no_load")
def test_prepare_resolves_the_tiny_model_with_the_backends_cache_without_loading_it(
    tiny_cache: Path, make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, int]] = []

    def record(cache_dir: Path | str | None = None, *, seed: int = 0) -> Path:
        calls.append((cache_dir, seed))
        return ensure_tiny_model(cache_dir, seed=seed)

    monkeypatch.setattr(llem_backend_pytorch.loading, "ensure_tiny_model", record)
    backend = PyTorchBackend(cache_dir=tiny_cache)
    backend.prepare(make_config())
    assert calls == [(tiny_cache, 0)]
    with pytest.raises(BackendStateError, match="call load"):
        backend.model  # noqa: B018


@pytest.mark.usefixtures("no_load")
def test_prepare_refuses_an_arrival_rate_it_cannot_keep(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    with pytest.raises(ConfigError) as caught:
        backend.prepare(make_config(load={"request_rate": 4}))
    assert str(caught.value) == (
        "the pytorch backend generates static batches and sends nothing on a schedule: leave "
        "load.request_rate at inf, or measure a server under an arrival rate with backend openai"
    )
    assert caught.value.key == "load.request_rate"


def _context(local_index: int) -> WorkerContext:
    return WorkerContext(
        process_index=local_index + 2,
        num_processes=4,
        local_index=local_index,
        local_count=2,
    )


def test_load_goes_on_the_cpu_where_torch_sees_no_gpu(
    backend: PyTorchBackend, make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = backend.load(make_config(), _context(1))
    assert (info.device, info.device_indices, info.device_uuids) == ("cpu", [], [])
    assert backend.model.device == torch.device("cpu")
    (timing,) = backend.generate_batch(["Why is the sky blue?"])
    assert timing.output_tokens > 0


def test_load_takes_the_gpu_of_the_local_index_where_torch_sees_one(
    backend: PyTorchBackend, make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed: list[int | None] = []
    info = ModelInfo(model="llem/tiny", num_parameters=0, dtype="float32", device="cuda:1")

    def load_on(config: ExperimentConfig, device_index: int | None) -> ModelInfo:
        placed.append(device_index)
        return info

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backend, "load_on", load_on)
    assert backend.load(make_config(), _context(1)) is info
    assert backend.load(make_config(), _context(0)) is info
    assert placed == [1, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_on_a_gpu_names_it_by_its_nvml_uuid(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    info = backend.load(make_config(), WorkerContext(process_index=0, num_processes=1))
    assert info.device == "cuda:0"
    assert info.device_indices == [0]
    (uuid,) = info.device_uuids
    assert uuid.startswith(("GPU-", "MIG-"))
    assert uuid.endswith(str(torch.cuda.get_device_properties(0).uuid))
    backend.generate_batch(["Why is the sky blue?"])
    backend.synchronize()
    peak = backend.peak_memory()
    assert peak is not None
    assert peak.source == "cuda"
    assert peak.mb > 0

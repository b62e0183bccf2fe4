"""prepare and load: the checks before a run, the model name, where the server is, and the
API key, which travels in a header and nowhere else."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llem_backend_openai import OpenAIBackend, ServerError
from llem_backend_openai.backend import _is_local, _share
from llem_schema import ConfigError, ExperimentConfig, Request, WorkerContext

if TYPE_CHECKING:
    from conftest import ScriptedServer

ConfigFactory = Callable[..., ExperimentConfig]

KEY_VARIABLE = "LLEM_TEST_OPENAI_KEY"
KEY = "sk-test-4f9a1c0e7d"


# ---- load: the model and where it runs ----


def test_load_takes_the_first_model_the_server_lists(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    server.models = ["scripted-model", "another-model"]
    info = backend.load(make_config(model="hub/some-model"), context)
    assert info.model == "scripted-model"
    list(backend.run([Request(index=0, prompt="ok 1")]))
    assert [r.method + " " + r.path for r in server.received] == [
        "GET /v1/models",  # does it answer
        "GET /v1/models",  # which model
        "POST /v1/completions",  # the probe
        "POST /v1/completions",
    ]
    body = server.posts()[0].body
    assert body is not None
    assert body["model"] == "scripted-model"


def test_load_uses_openai_model_when_it_is_set(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    info = backend.load(make_config(openai={"model": "served-name"}), context)
    assert info.model == "served-name"
    list(backend.run([Request(index=0, prompt="ok 1")]))
    (post,) = server.posts()
    assert post.body is not None
    assert post.body["model"] == "served-name"


def test_load_falls_back_on_the_experiments_model_when_the_server_lists_none(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    server.models = []
    info = backend.load(make_config(model="hub/some-model"), context)
    assert info.model == "hub/some-model"


def test_a_local_server_runs_on_gpus_the_backend_cannot_name_and_warns_of_nothing(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    info = backend.load(make_config(), context)
    assert info.devices_unknown is True
    assert info.warnings == []
    assert (info.device, info.device_indices, info.device_uuids) == (server.base_url, [], [])
    assert (info.num_parameters, info.dtype, info.revision) == (0, "unknown", None)
    assert info.details == {
        "base_url": server.base_url,
        "api": "completions",
        "token_counts": "usage",
    }


def test_a_server_on_another_host_is_no_local_device_and_is_warned_of(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 192.0.2.1 (TEST-NET-1) is never this host; the scripted server is reached as an HTTP
    # proxy, as httpx sends requests through one named in the environment.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    remote = "http://192.0.2.1:8000/v1"
    info = backend.load(make_config(openai={"base_url": remote, "api": "chat"}), context)
    assert info.devices_unknown is False
    assert info.device == remote
    assert info.details == {"base_url": remote, "api": "chat", "token_counts": "usage"}
    assert info.warnings == [
        f"the server at {remote} is not on this host: the energy measured here is not the "
        "server's (set energy.source to 'none', or measure on its host)",
        "requests go through the proxy the environment names (HTTP_PROXY, HTTPS_PROXY or "
        "ALL_PROXY): the latencies include it (add the host to NO_PROXY to avoid it)",
    ]
    (timing,) = backend.run([Request(index=0, prompt="ok 2")])
    assert (timing.error, timing.output_tokens) == (None, 2)
    assert server.posts()[0].path == "/v1/chat/completions"


def test_load_refuses_a_base_url_where_no_server_answers(
    backend: OpenAIBackend, make_config: ConfigFactory, context: WorkerContext, unused_port: int
) -> None:
    base_url = f"http://127.0.0.1:{unused_port}/v1"
    with pytest.raises(ServerError) as caught:
        backend.load(make_config(openai={"base_url": base_url}), context)
    assert str(caught.value) == (
        f"no OpenAI-compatible server answers at {base_url} (GET /models); start it, or let "
        "llem start it with openai.server"
    )


def test_load_refuses_a_server_whose_models_route_is_not_there(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    base_url = f"http://127.0.0.1:{server.port}/api"  # /api/models: 404
    with pytest.raises(ServerError, match=r"^no OpenAI-compatible server answers at "):
        backend.load(make_config(openai={"base_url": base_url}), context)


@pytest.mark.parametrize(
    ("base_url", "local"),
    [
        ("http://localhost:8000/v1", True),
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.0.0.5:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://LOCALHOST/v1", True),
        (f"http://{socket.gethostname()}:8000/v1", True),
        ("http://192.0.2.1:8000/v1", False),
        ("https://198.51.100.7/v1", False),
        ("http://[2001:db8::1]:8000/v1", False),
    ],
)
def test_is_local_tells_this_host_from_others(base_url: str, local: bool) -> None:
    assert _is_local(base_url) is local


# ---- load: the probe ----


def test_load_probes_the_model_with_one_token(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(max_new_tokens=64, openai={"api": "chat"}), context)
    (probe,) = server.probes()
    assert probe.path == "/v1/chat/completions"
    assert probe.body is not None
    assert (probe.body["model"], probe.body["max_tokens"]) == ("scripted-model", 1)


def test_a_server_without_usage_counts_chunks_and_says_so(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    server.probe_behaviour = "nousage 1"
    info = backend.load(make_config(), context)
    assert info.details["token_counts"] == "chunks"
    assert info.warnings == [
        "the server gives no token counts (stream usage): output tokens are counted as the "
        "chunks that carried text, which undercounts where a chunk holds several"
    ]


def test_load_refuses_a_server_that_refuses_the_probe(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    server.probe_behaviour = "http500"
    with pytest.raises(ServerError) as caught:
        backend.load(make_config(openai={"model": "no-such-model"}), context)
    assert str(caught.value) == (
        f"the server at {server.base_url} refuses a request for model 'no-such-model' on "
        "/completions: HTTP 500: engine exploded"
    )


def _outgoing_address() -> str:
    """This host's address on the interface a packet to TEST-NET-1 would leave by (no
    packet is sent); the loopback where there is no such route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return "127.0.0.1"
        return str(probe.getsockname()[0])


def test_a_server_reached_by_an_address_of_this_host_is_local() -> None:
    assert _is_local(f"http://{_outgoing_address()}:8000/v1") is True


# ---- prepare ----


def test_prepare_refuses_a_running_server_that_does_not_answer(
    backend: OpenAIBackend, make_config: ConfigFactory, unused_port: int
) -> None:
    base_url = f"http://127.0.0.1:{unused_port}/v1"
    with pytest.raises(ServerError) as caught:
        backend.prepare(make_config(openai={"base_url": base_url}))
    assert str(caught.value) == (
        f"no OpenAI-compatible server answers at {base_url} (GET /models); start it, or let "
        "llem start it with openai.server"
    )


def test_a_managed_server_is_refused_where_another_already_answers(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    config = make_config(openai={"server": {"command": ["vllm", "serve"]}})
    message = (
        f"a server already answers at {server.base_url} (GET /models), so the one "
        "openai.server starts could not serve it: stop that one, or give openai.server another "
        "port (and base_url with it)"
    )
    with pytest.raises(ServerError) as refused:
        backend.prepare(config)
    assert str(refused.value) == message
    with pytest.raises(ServerError) as refused:
        backend.load(config, context)  # it began answering after prepare
    assert str(refused.value) == message
    assert context.files_dir is not None
    assert not (Path(context.files_dir) / "server.log").exists()  # nothing was started


def test_prepare_leaves_a_managed_server_to_load(
    backend: OpenAIBackend, make_config: ConfigFactory, unused_port: int
) -> None:
    base_url = f"http://127.0.0.1:{unused_port}/v1"  # nothing there until load starts it
    backend.prepare(make_config(openai={"base_url": base_url, "server": {"command": ["s"]}}))


def test_prepare_refuses_a_managed_server_with_several_processes(
    backend: OpenAIBackend, make_config: ConfigFactory
) -> None:
    config = make_config(num_processes=2, openai={"server": {"command": ["serve"]}})
    with pytest.raises(ConfigError) as caught:
        backend.prepare(config)
    assert str(caught.value) == (
        "openai.server starts one server, so it runs with num_processes 1 (one process sends "
        "requests to it at any rate)"
    )
    assert caught.value.key == "num_processes"


def test_prepare_refuses_fewer_requests_in_flight_than_processes(
    backend: OpenAIBackend, make_config: ConfigFactory
) -> None:
    with pytest.raises(ConfigError) as caught:
        backend.prepare(make_config(num_processes=3, load={"max_concurrency": 2}))
    assert str(caught.value) == (
        "load.max_concurrency 2 is below num_processes 3: each process sends at least one "
        "request at a time"
    )
    assert caught.value.key == "load.max_concurrency"


@pytest.mark.parametrize(("bound", "shares"), [(None, [None] * 3), (3, [1, 1, 1]), (8, [3, 3, 2])])
def test_the_bound_on_requests_in_flight_is_shared_among_the_processes(
    bound: int | None, shares: list[int | None]
) -> None:
    contexts = [WorkerContext(process_index=i, num_processes=3) for i in range(3)]
    assert [_share(bound, c) for c in contexts] == shares


def test_prepare_takes_several_processes_sending_to_a_running_server(
    backend: OpenAIBackend, make_config: ConfigFactory
) -> None:
    backend.prepare(make_config(num_processes=2))


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_prepare_refuses_an_api_key_variable_that_is_not_set(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
) -> None:
    if value is None:
        monkeypatch.delenv(KEY_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(KEY_VARIABLE, value)
    with pytest.raises(ConfigError) as caught:
        backend.prepare(make_config(openai={"api_key_env": KEY_VARIABLE}))
    assert str(caught.value) == f"openai.api_key_env names {KEY_VARIABLE}, which is not set"
    assert caught.value.key == "openai.api_key_env"


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_the_api_key_goes_in_a_bearer_header_and_nowhere_in_the_result(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    config = make_config(openai={"api_key_env": KEY_VARIABLE, "api": api})
    backend.prepare(config)
    info = backend.load(config, context)
    warm = backend.warmup([Request(index=0, prompt="ok 1")])
    (timing,) = backend.run([Request(index=1, prompt="ok 2")])
    assert [t.error for t in [*warm, timing]] == [None, None]
    # /models three times (prepare, load twice), the probe, the warmup's and the run's request
    assert len(server.received) == 6
    assert {r.headers.get("authorization") for r in server.received} == {f"Bearer {KEY}"}
    assert KEY not in info.model_dump_json()
    assert KEY not in config.model_dump_json()
    assert KEY not in timing.model_dump_json()
    assert KEY not in backend.version


@pytest.mark.parametrize("base_url", ["http://0.0.0.0:8000/v1", "http://[::]:8000/v1"])
def test_the_unspecified_address_is_this_host(base_url: str) -> None:
    """A server started with ``--host 0.0.0.0`` prints ``http://0.0.0.0:8000``; a client
    connecting there reaches this host, whose GPUs are then metered."""
    assert _is_local(base_url) is True

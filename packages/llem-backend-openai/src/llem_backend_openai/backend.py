"""The ``openai`` backend: a client of an OpenAI-compatible server (vLLM, SGLang, TGI,
TensorRT-LLM's server, ``transformers serve``) under an arrival schedule.

``load`` starts the server when the config asks llem to manage one (``openai.server``) and
waits until it answers, or checks that the running one answers; it finds the model name and
whether the server gives token counts. ``run`` sends every request at its scheduled time
(:mod:`~llem_backend_openai.sender`) and yields timings as responses complete. ``unload``
stops a managed server, its log kept beside the result.

The server is another process, on GPUs this backend cannot name: the harness meters every GPU
of the host unless ``energy.devices`` names them. A server on another host is measured
without its energy, and the result says so.
"""

import dataclasses
import ipaddress
import os
import socket
import ssl
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx2

from llem_backend_openai.client import Endpoint
from llem_backend_openai.errors import ServerError
from llem_backend_openai.sender import Sender
from llem_backend_openai.server import ManagedServer, answers
from llem_backend_openai.settings import OpenAISettings
from llem_schema import (
    ConfigError,
    ExperimentConfig,
    FlopsEstimate,
    ModelInfo,
    PeakMemory,
    Request,
    RequestRecord,
    RequestTiming,
    WorkerContext,
)

__all__ = ["OpenAIBackend"]

SERVER_LOG: Final = "server.log"
_CHECK_TIMEOUT_S: Final = 10.0
_PROBE_TIMEOUT_S: Final = 120.0
"""The probe waits at least this long: a first request may compile or warm caches."""
PROBE_PROMPT: Final = "Hello"


class OpenAIBackend:
    """Implements :class:`llem_schema.InferenceBackend` for an OpenAI-compatible server."""

    settings_model = OpenAISettings

    def __init__(self) -> None:
        self._config: ExperimentConfig | None = None
        self._settings = OpenAISettings()
        self._endpoint: Endpoint | None = None
        self._server: ManagedServer | None = None
        self._tls: ssl.SSLContext | None = None
        self._width: int | None = None  # this process's share of load.max_concurrency

    @property
    def name(self) -> str:
        return "openai"

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"llem-backend-openai {version('llem-backend-openai')}; httpx2 {httpx2.__version__}"

    def prepare(self, config: ExperimentConfig) -> None:
        """Refuse what cannot run, before anything is recorded: a managed server with several
        processes, a key variable that is not set, a running server that does not answer."""
        settings = config.backend_settings(OpenAISettings)
        if settings.server is not None and config.num_processes > 1:
            raise ConfigError(
                "openai.server starts one server, so it runs with num_processes 1 (one process "
                "sends requests to it at any rate)",
                key="num_processes",
            )
        bound = config.load.max_concurrency
        if bound is not None and bound < config.num_processes:
            raise ConfigError(
                f"load.max_concurrency {bound} is below num_processes "
                f"{config.num_processes}: each process sends at least one request at a time",
                key="load.max_concurrency",
            )
        self._settings = settings
        self._headers()  # a key variable that is not set
        with self._sync_client() as client:
            _check_answering(settings, answers(client, "/models")())

    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        """Start (or find) the server, wait until it answers, and learn its model name."""
        settings = config.backend_settings(OpenAISettings)
        self._config, self._settings = config, settings
        self._width = _share(config.load.max_concurrency, context)
        self._tls = ssl.create_default_context()  # once: a client each run then starts at once
        with self._sync_client() as client:
            answering = answers(client, "/models")
            _check_answering(settings, answering())  # again: it may have changed since
            if settings.server is not None:
                log_dir = Path(context.files_dir or tempfile.mkdtemp(prefix="llem-openai-"))
                self._server = ManagedServer(settings.server, log_dir / SERVER_LOG)
                self._server.start()
                ready_s = self._server.wait_ready(answering)
            listed = _listed_models(client)
        model = settings.model or (listed[0] if listed else config.model)
        chat = settings.api == "chat"
        self._endpoint = Endpoint(
            path="/chat/completions" if chat else "/completions",
            model=model,
            chat=chat,
            body=_body(config, settings),
            timeout_s=settings.timeout_s,
        )
        counted = self._probe()
        local = _is_local(settings.base_url)
        warnings = []
        if not local:
            warnings.append(
                f"the server at {settings.base_url} is not on this host: the energy measured "
                "here is not the server's (set energy.source to 'none', or measure on its host)"
            )
        if not counted:
            warnings.append(
                "the server gives no token counts (stream usage): output tokens are counted "
                "as the chunks that carried text, which undercounts where a chunk holds several"
            )
        if _proxied(settings.base_url):
            warnings.append(
                "requests go through the proxy the environment names (HTTP_PROXY, HTTPS_PROXY "
                "or ALL_PROXY): the latencies include it (add the host to NO_PROXY to avoid it)"
            )
        details: dict[str, Any] = {
            "base_url": settings.base_url,
            "api": settings.api,
            "token_counts": "usage" if counted else "chunks",
        }
        if self._server is not None:
            details |= {"managed": True, "ready_s": round(ready_s, 3), "log": SERVER_LOG}
        return ModelInfo(
            model=model,
            num_parameters=0,
            dtype="unknown",
            device=settings.base_url,
            devices_unknown=local,
            details=details,
            warnings=warnings,
        )

    def _probe(self) -> bool:
        """One request of a single token: whether the server takes the model and the API,
        and whether it gives token counts."""
        assert self._endpoint is not None
        probe = dataclasses.replace(
            self._endpoint,
            body={**self._endpoint.body, "max_tokens": 1},
            timeout_s=max(self._endpoint.timeout_s, _PROBE_TIMEOUT_S),
        )
        # through a sender's own thread and loop: load may run under an event loop (Jupyter)
        sender = Sender(lambda: self._async_client(probe.timeout_s), probe, max_concurrency=None)
        (timing,) = sender.send([Request(index=0, prompt=PROBE_PROMPT)])
        if timing.error is not None:
            raise ServerError(
                f"the server at {self._settings.base_url} refuses a request for model "
                f"{probe.model!r} on {probe.path}: {timing.error}"
            )
        return sender.usage_counted == 1

    def count_tokens(self, text: str) -> int | None:
        return None  # the server tokenizes; an OpenAI-compatible API has no call for it

    def warmup(self, requests: Sequence[Request]) -> Sequence[RequestTiming]:
        """A round of up to this process's share of ``load.max_concurrency`` (else 8)
        requests sent at once."""
        self._require()
        batch = [r.model_copy(update={"scheduled_s": None}) for r in requests[: self._width or 8]]
        return list(self._sender().send(batch))

    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        """Every request at its scheduled time; timings as responses complete."""
        self._require()
        yield from self._sender().send(requests)

    def synchronize(self) -> None:
        return None  # the server's work is done when its responses are

    def peak_memory(self) -> PeakMemory | None:
        return None  # the server's memory is not this process's

    def estimate_flops(self, requests: Sequence[RequestRecord]) -> FlopsEstimate | None:
        return None

    def unload(self) -> None:
        """Stop a managed server (its log stays where ``load`` put it)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._config, self._endpoint = None, None

    def _require(self) -> ExperimentConfig:
        if self._config is None or self._endpoint is None:
            raise ServerError("the openai backend sends nothing before load()")
        return self._config

    def _sender(self) -> Sender:
        assert self._endpoint is not None
        return Sender(self._async_client, self._endpoint, max_concurrency=self._width)

    def _headers(self) -> dict[str, str]:
        name = self._settings.api_key_env
        if name is None:
            return {}
        key = os.environ.get(name)
        if not key:
            raise ConfigError(
                f"openai.api_key_env names {name}, which is not set", key="openai.api_key_env"
            )
        return {"Authorization": f"Bearer {key}"}

    def _sync_client(self) -> httpx2.Client:
        return httpx2.Client(
            base_url=self._settings.base_url, headers=self._headers(), timeout=_CHECK_TIMEOUT_S
        )

    def _async_client(self, timeout_s: float | None = None) -> httpx2.AsyncClient:
        limits = httpx2.Limits(max_connections=self._width, max_keepalive_connections=self._width)
        return httpx2.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._headers(),
            timeout=timeout_s or self._settings.timeout_s,
            limits=limits,
            verify=self._tls or True,
        )


def _body(config: ExperimentConfig, settings: OpenAISettings) -> dict[str, Any]:
    """What every request's body holds besides the prompt: length and decoding settings."""
    decoder = config.decoder
    body: dict[str, Any] = {"max_tokens": config.max_new_tokens}
    if decoder.mode == "greedy":
        body["temperature"] = 0.0
    else:
        body |= {"temperature": decoder.temperature, "top_p": decoder.top_p}
        if decoder.top_k:
            body["top_k"] = decoder.top_k  # vLLM, SGLang and TGI take it; OpenAI's own does not
    if decoder.ignore_eos:
        body["ignore_eos"] = True  # where the server supports it (vLLM, SGLang)
    body["seed"] = config.seed
    return body | dict(settings.extra_body)


def _share(bound: int | None, context: WorkerContext) -> int | None:
    """This process's part of ``bound`` requests in flight, split as evenly as it goes."""
    if bound is None:
        return None
    share, rest = divmod(bound, context.num_processes)
    return share + (context.process_index < rest)


def _check_answering(settings: OpenAISettings, answering: bool) -> None:
    """A server to measure must answer; where llem is to start one, none may answer yet
    (the one it starts could not serve ``base_url``)."""
    if settings.server is None and not answering:
        raise ServerError(
            f"no OpenAI-compatible server answers at {settings.base_url} (GET /models); "
            "start it, or let llem start it with openai.server"
        )
    if settings.server is not None and answering:
        raise ServerError(
            f"a server already answers at {settings.base_url} (GET /models), so the one "
            "openai.server starts could not serve it: stop that one, or give openai.server "
            "another port (and base_url with it)"
        )


def _proxied(base_url: str) -> bool:
    """Whether the environment sends requests to ``base_url`` through a proxy (httpx2 follows
    HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, as the standard library reads them)."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.netloc)  # on POSIX: NO_PROXY


def _listed_models(client: httpx2.Client) -> list[str]:
    try:
        listed = client.get("/models").json().get("data") or []
    except (httpx2.HTTPError, ValueError, AttributeError):
        return []
    return [m["id"] for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _is_local(base_url: str) -> bool:
    """Whether ``base_url``'s host is this machine: a loopback or unspecified address, or one
    this host can bind (one of its interfaces' addresses)."""
    host = urlsplit(base_url).hostname or ""
    if host in ("localhost", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return any(_own_address(family, str(address[0])) for family, *_, address in found)


def _own_address(family: int, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or ip.is_unspecified:
        return True
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True

"""A real, scripted OpenAI-compatible server on 127.0.0.1, and configs that point at it.

:class:`ScriptedServer` is an ``http.server.ThreadingHTTPServer`` in a daemon thread. It
answers ``GET /v1/models`` and streams ``POST /v1/completions`` and
``POST /v1/chat/completions`` as server-sent events, chunked (HTTP/1.1, as uvicorn serves
vLLM and SGLang). What a request gets is chosen by its prompt (the chat user message), a
behaviour name and up to two numbers:

``ok N [GAP_MS]``
    N text chunks ``GAP_MS`` apart (default 0), an empty-text chunk with the finish reason,
    a usage chunk (``prompt_tokens`` = the prompt's length in characters,
    ``completion_tokens`` = N), then ``[DONE]``.
``nousage N [GAP_MS]``
    The same without the usage chunk.
``multi``
    3 text chunks, a usage that counts 5 completion tokens.
``under``
    4 text chunks, a usage that counts 2 completion tokens.
``http500``
    Status 500, the body ``engine exploded`` and a second line.
``slow``
    Sends nothing until the test ends (well past any timeout a test sets).
``stall``
    One text chunk, then nothing until the test ends.
``malformed``
    One text chunk, then ``data: {not json``.
``array``
    One text chunk, then ``data: [1, 2]`` (JSON, but not an object).
``cut``
    Two text chunks, then the connection closed mid-body (no final chunk, no ``[DONE]``).
``nodone``
    Two text chunks in a body that ends when the connection closes (no length, not
    chunked: HTTP/1.0 style), closed without a finish reason, usage or ``[DONE]``.
``nodoneok N``
    As ``transformers serve`` streams: N text chunks, then one chunk with the finish reason
    and the usage, and the body ends (chunked) without ``[DONE]``.
``errorevent``
    One text chunk, then ``data: {"error": {...}}`` and ``[DONE]``, as vLLM reports a
    failure inside a stream (``transformers serve`` sends ``{"error": "..."}`` and stops).
``badusage``
    One text chunk, then a chunk whose ``usage`` is a number, not an object, and ``[DONE]``.
``split N``
    N text chunks and a usage with CRLF line ends, each event written in two pieces cut
    mid-line (50 ms apart; a chunk's time is its second piece's), then ``data: [DONE]``
    with no line end.

The backend's probe (one request of one token that ``load`` sends, its prompt
:data:`~llem_backend_openai.backend.PROBE_PROMPT`) gets ``probe_behaviour`` (``ok 1`` unless a
test sets another); :meth:`ScriptedServer.posts` leaves probes out, :meth:`ScriptedServer.probes`
lists them.

For each request it records when it arrived (``time.perf_counter()``, the clock the backend
times tokens on: both run in this process), its path, headers and JSON body, and when each
text chunk was written; and the most requests it had in flight at once (a request leaves
just before its last bytes are written, so a client that sends the next one as soon as a
response ends is never counted twice).
"""

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from llem_backend_openai import OpenAIBackend, OpenAISettings
from llem_backend_openai.backend import PROBE_PROMPT
from llem_schema import ExperimentConfig, WorkerContext, parse_config

ConfigFactory = Callable[..., ExperimentConfig]

MODEL = "scripted-model"
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class Received:
    """One request as the scripted server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    arrived_s: float
    body: dict[str, Any] | None = None
    chunk_times_s: list[float] = field(default_factory=list)
    """When each text chunk was written (perf_counter)."""

    @property
    def prompt(self) -> str:
        assert self.body is not None
        if "messages" in self.body:
            return str(self.body["messages"][0]["content"])
        return str(self.body["prompt"])


class ScriptedServer(ThreadingHTTPServer):
    """The scripted OpenAI-compatible server (see the module's docstring)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.models: list[str] = [MODEL]
        self.probe_behaviour = "ok 1"
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        """Set when the test ends: ``slow`` and ``stall`` stop waiting."""

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def posts(self) -> list[Received]:
        """The POST requests received, in order of arrival, but the backend's probes."""
        with self.lock:
            return [r for r in self.received if r.method == "POST" and not _probe(r)]

    def probes(self) -> list[Received]:
        """The probes ``load`` sent."""
        with self.lock:
            return [r for r in self.received if r.method == "POST" and _probe(r)]

    def post_for(self, prompt: str) -> Received:
        """The one POST whose prompt is ``prompt``."""
        (found,) = [r for r in self.posts() if r.prompt == prompt]
        return found

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up (a timeout the test asked for) is no failure here


def _probe(received: Received) -> bool:
    return received.body is not None and received.prompt == PROBE_PROMPT


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ---- plumbing ----

    def _record(self, method: str) -> Received:
        received = Received(
            method=method,
            path=urlsplit(self.path).path,  # absolute-form through a proxy, too
            headers={k.lower(): v for k, v in self.headers.items()},
            arrived_s=time.perf_counter(),
        )
        with self.server.lock:
            self.server.received.append(received)
        return received

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: object) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {text}\n\n".encode())

    # ---- routes ----

    def do_GET(self) -> None:
        received = self._record("GET")
        if received.path == "/v1/models":
            data = [{"id": name, "object": "model"} for name in self.server.models]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        received = self._record("POST")
        length = int(self.headers.get("Content-Length") or 0)
        received.body = json.loads(self.rfile.read(length))
        if received.path not in ("/v1/completions", "/v1/chat/completions"):
            self._json(404, {"error": "not found"})
            return
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                with server.lock:
                    server.in_flight -= 1

        try:
            self._respond(received, leave)
        finally:
            leave()

    def _respond(self, received: Received, leave: Callable[[], None]) -> None:
        chat = received.path.endswith("/chat/completions")
        words = (self.server.probe_behaviour if _probe(received) else received.prompt).split()
        behaviour = words[0]
        numbers = [int(word) for word in words[1:]]

        def text_chunk() -> dict[str, Any]:
            received.chunk_times_s.append(time.perf_counter())
            if chat:
                return {"choices": [{"index": 0, "delta": {"content": "tok"}}]}
            return {"choices": [{"index": 0, "text": "tok"}]}

        def usage(completion_tokens: int) -> dict[str, Any]:
            prompt_tokens = len(received.prompt)
            return {
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }

        def finish() -> None:
            leave()
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")  # the last chunk of the chunked body

        if behaviour == "http500":
            leave()
            message = b"engine exploded\nsecond line\n"
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        if behaviour == "slow":
            server = self.server
            server.release.wait(10.0)
            self.close_connection = True
            return

        if behaviour == "nodone":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(2):
                self.wfile.write(f"data: {json.dumps(text_chunk())}\n\n".encode())
                self.wfile.flush()
            leave()
            self.close_connection = True
            return

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if chat:  # a role chunk first, as OpenAI and vLLM send: no text, so no token
            self._event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})

        if behaviour in ("ok", "nousage"):
            count = numbers[0] if numbers else 1
            gap_ms = numbers[1] if len(numbers) > 1 else 0
            for i in range(count):
                if i and gap_ms:
                    time.sleep(gap_ms / 1000)
                self._event(text_chunk())
            last: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            if chat:
                last["delta"] = {}
            else:
                last["text"] = ""
            self._event({"choices": [last]})
            if behaviour == "ok":
                self._event(usage(count))
            finish()
        elif behaviour in ("multi", "under"):
            for _ in range(3 if behaviour == "multi" else 4):
                self._event(text_chunk())
            self._event(usage(5 if behaviour == "multi" else 2))
            finish()
        elif behaviour == "nodoneok":
            for _ in range(numbers[0]):
                self._event(text_chunk())
            last = usage(numbers[0])
            last["choices"] = [{"index": 0, "text": "", "finish_reason": "stop"}]
            self._event(last)
            leave()
            self._chunk(b"")
        elif behaviour == "stall":
            self._event(text_chunk())
            self.server.release.wait(10.0)
            self.close_connection = True
        elif behaviour in ("malformed", "array"):
            self._event(text_chunk())
            self._event("{not json" if behaviour == "malformed" else "[1, 2]")
            finish()
        elif behaviour == "cut":
            self._event(text_chunk())
            self._event(text_chunk())
            leave()
            self.close_connection = True  # the handler closes the socket mid-body
        elif behaviour == "errorevent":
            self._event(text_chunk())
            error = {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}
            self._event({"error": error})
            finish()
        elif behaviour == "badusage":
            self._event(text_chunk())
            self._event({"choices": [], "usage": 5})
            finish()
        elif behaviour == "split":
            for index in range(numbers[0] + 1):
                event = text_chunk() if index < numbers[0] else usage(numbers[0])
                line = f"data: {json.dumps(event)}\r\n\r\n".encode()
                self._chunk(line[:9])  # cut inside the JSON
                time.sleep(0.05)
                if index < numbers[0]:  # a token's line is whole only from now
                    received.chunk_times_s[-1] = time.perf_counter()
                self._chunk(line[9:])
            leave()
            self._chunk(b"data: [DONE]")
            self._chunk(b"")
        else:
            raise AssertionError(f"the scripted server has no behaviour {behaviour!r}")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables: none may send a test's requests elsewhere."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted server listening on 127.0.0.1 (a port of its own)."""
    instance = ScriptedServer()
    thread = threading.Thread(target=instance.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield instance
    finally:
        instance.release.set()
        instance.shutdown()
        instance.server_close()
        thread.join(5.0)


@pytest.fixture
def make_config(server: ScriptedServer) -> ConfigFactory:
    """A resolved ``openai`` config pointing at the scripted server.

    ``openai`` and ``load`` are merged into the sections; other keywords set top-level keys.
    """

    def build(
        *, openai: dict[str, Any] | None = None, load: dict[str, Any] | None = None, **top: Any
    ) -> ExperimentConfig:
        data: dict[str, Any] = {
            "backend": "openai",
            "n": 8,
            "max_new_tokens": 16,
            "openai": {"base_url": server.base_url, "timeout_s": 5.0} | (openai or {}),
            "load": load or {},
        }
        return parse_config(data | top, backends={"openai": OpenAISettings})

    return build


@pytest.fixture
def context(tmp_path: Path) -> WorkerContext:
    """One process, keeping files in a directory of the test's own."""
    files = tmp_path / "files"
    return WorkerContext(process_index=0, num_processes=1, files_dir=str(files))


@pytest.fixture
def backend() -> Iterator[OpenAIBackend]:
    """A backend, unloaded when the test ends."""
    instance = OpenAIBackend()
    try:
        yield instance
    finally:
        instance.unload()


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

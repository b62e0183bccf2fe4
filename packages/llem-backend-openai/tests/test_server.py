"""The managed server (``openai.server``): real subprocesses started, waited for, and stopped
with their process group, their output kept in ``server.log`` beside the result.

The servers are a small script written into the test's directory: an HTTP/1.0 server
(responses end when the connection closes) answering ``GET /v1/models`` and streaming
``POST /v1/completions`` for a prompt ``ok N``, after a short while (a server loads its
model before it answers)."""

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from llem_backend_openai import (
    SERVER_LOG,
    OpenAIBackend,
    OpenAISettings,
    ServerError,
    ServerSettings,
)
from llem_backend_openai.server import ManagedServer, answers
from llem_schema import ExperimentConfig, Request, WorkerContext, parse_config

ConfigFactory = Callable[..., ExperimentConfig]

pytestmark = pytest.mark.slow  # real subprocesses

SERVER_SCRIPT = '''\
"""A tiny OpenAI-compatible server: python server.py PORT [MODE [ARG]]."""
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)

port, mode = int(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "plain")
print(f"scripted server pid {os.getpid()} group {os.getpgrp()}", flush=True)
print(f"greeting {os.environ.get('LLEM_SCRIPTED_GREETING')}", flush=True)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode in ("stubborn-child", "crash-with-child"):
    child = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    child.stdout.readline()  # it ignores SIGTERM from now on
    print(f"child pid {child.pid}", flush=True)
    if mode == "crash-with-child":
        print("engine failed to start", flush=True)
        sys.exit(4)
time.sleep(0.4)  # loading the model


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        data = json.dumps({"object": "list", "data": [{"id": "managed-model"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        words = body["prompt"].split()
        count = int(words[1]) if len(words) > 1 else 1  # the backend's probe: one token
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for _ in range(count):
            self.wfile.write(b'data: {"choices": [{"index": 0, "text": "tok"}]}\\n\\n')
        usage = {"prompt_tokens": 3, "completion_tokens": count, "total_tokens": 3 + count}
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\\n\\n".encode())
        self.wfile.write(b"data: [DONE]\\n\\n")


server = HTTPServer(("127.0.0.1", port), Handler)
print("serving", flush=True)
server.serve_forever()
'''


def live_group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still running (zombies left out), read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'
            state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                members.append(int(entry.name))
    return members


def _gone(pgid: int, within_s: float = 2.0) -> bool:
    """Whether group ``pgid`` has no running process (waiting up to ``within_s`` for an
    orphan's end to be seen)."""
    deadline = time.monotonic() + within_s
    while live_group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "server.py"
    path.write_text(SERVER_SCRIPT)
    return path


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Process groups a test started: whatever is left of them is killed at its end."""
    started: list[int] = []
    yield started
    for pgid in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _server_config(port: int, command: list[str], **server: object) -> ExperimentConfig:
    section = {"command": command, "ready_timeout_s": 20.0, "stop_timeout_s": 5.0} | server
    data = {
        "backend": "openai",
        "n": 4,
        "max_new_tokens": 8,
        "openai": {"base_url": f"http://127.0.0.1:{port}/v1", "server": section},
    }
    return parse_config(data, backends={"openai": OpenAISettings})


def _logged_pid(log: Path, what: str = "scripted server pid") -> int:
    match = re.search(rf"^{what} (\d+)", log.read_text(), re.MULTILINE)
    assert match is not None, log.read_text()
    return int(match.group(1))


# ---- through the backend ----


def test_load_starts_the_server_waits_until_it_answers_and_unload_stops_it(
    backend: OpenAIBackend, context: WorkerContext, script: Path, unused_port: int,
    groups: list[int],
) -> None:  # fmt: skip
    command = [sys.executable, str(script), str(unused_port)]
    config = _server_config(unused_port, command, env={"LLEM_SCRIPTED_GREETING": "hello"})
    started = time.monotonic()
    info = backend.load(config, context)
    waited = time.monotonic() - started
    assert context.files_dir is not None
    log = Path(context.files_dir) / SERVER_LOG
    pid = _logged_pid(log)
    groups.append(pid)
    assert info.model == "managed-model"
    assert info.devices_unknown is True
    assert info.warnings == []
    ready_s = info.details["ready_s"]
    assert isinstance(ready_s, float)
    assert 0.4 <= ready_s <= waited
    assert info.details == {
        "base_url": f"http://127.0.0.1:{unused_port}/v1",
        "api": "completions",
        "token_counts": "usage",
        "managed": True,
        "ready_s": ready_s,
        "log": "server.log",
    }
    assert live_group_members(pid) == [pid]  # its own group, led by the server

    (timing,) = backend.run([Request(index=0, prompt="ok 3")])
    assert (timing.error, timing.output_tokens, timing.input_tokens) == (None, 3, 3)

    backend.unload()
    assert _gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    lines = log.read_text().splitlines()
    assert lines[:4] == [
        f"--- llem starts: {' '.join(command)}",
        f"scripted server pid {pid} group {pid}",
        "greeting hello",
        "serving",
    ]
    backend.unload()  # again: nothing left to stop


def test_a_server_that_exits_at_once_is_a_server_error_quoting_its_log(
    backend: OpenAIBackend, context: WorkerContext, unused_port: int
) -> None:
    code = "import sys; print('CUDA error: no device', flush=True); sys.exit(3)"
    command = [sys.executable, "-c", code]
    assert context.files_dir is not None
    log = Path(context.files_dir) / SERVER_LOG
    assert not log.parent.exists()
    with pytest.raises(ServerError) as caught:
        backend.load(_server_config(unused_port, command), context)
    assert str(caught.value) == (
        f"the server exited with code 3 before it answered; its log (server.log) ends: "
        f"--- llem starts: {' '.join(command)} | CUDA error: no device"
    )
    assert log.read_text().splitlines() == [
        f"--- llem starts: {' '.join(command)}",
        "CUDA error: no device",
    ]
    backend.unload()  # as the harness does after a failed load


def test_a_command_that_cannot_start_is_a_server_error(
    backend: OpenAIBackend, context: WorkerContext, tmp_path: Path, unused_port: int
) -> None:
    missing = str(tmp_path / "no-such-server")
    with pytest.raises(ServerError) as caught:
        backend.load(_server_config(unused_port, [missing, "--port", "1"]), context)
    assert str(caught.value) == (
        f"cannot start the server ({missing} --port 1): No such file or directory"
    )


# ---- ManagedServer itself ----


def test_a_server_that_never_answers_fails_after_ready_timeout_and_is_stopped(
    tmp_path: Path, unused_port: int, groups: list[int]
) -> None:
    code = "import time; print('loading weights', flush=True); time.sleep(60)"
    command = [sys.executable, "-c", code]
    log = tmp_path / SERVER_LOG
    server = ManagedServer(ServerSettings(command=command, ready_timeout_s=1.0), log)
    server.start()
    pid = server.pid
    assert pid is not None
    groups.append(pid)
    started = time.monotonic()
    try:
        with (
            httpx2.Client(base_url=f"http://127.0.0.1:{unused_port}/v1") as client,
            pytest.raises(ServerError) as caught,
        ):
            server.wait_ready(answers(client, "/models"))
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert 1.0 <= elapsed < 4.0
    assert str(caught.value) == (
        f"the server did not answer within 1 s; its log (server.log) ends: "
        f"--- llem starts: {' '.join(command)} | loading weights"
    )
    assert server.pid is None
    assert _gone(pid)


def test_stop_sends_sigterm_and_returns_the_exit_code(
    tmp_path: Path, script: Path, unused_port: int, groups: list[int]
) -> None:
    command = [sys.executable, str(script), str(unused_port)]
    server = ManagedServer(ServerSettings(command=command, stop_timeout_s=10.0), tmp_path / "l")
    assert server.stop() is None  # never started
    server.start()
    assert server.pid is not None
    pid = server.pid
    groups.append(pid)
    with httpx2.Client(base_url=f"http://127.0.0.1:{unused_port}/v1") as client:
        server.wait_ready(answers(client, "/models"))
    started = time.monotonic()
    assert server.stop() == -signal.SIGTERM
    assert time.monotonic() - started < 5.0  # no wait for the stop timeout
    assert _gone(pid)
    assert server.stop() is None  # stopped already


def test_a_server_ignoring_sigterm_is_killed_after_stop_timeout(
    backend: OpenAIBackend, context: WorkerContext, script: Path, unused_port: int,
    groups: list[int],
) -> None:  # fmt: skip
    command = [sys.executable, str(script), str(unused_port), "ignore-term"]
    backend.load(_server_config(unused_port, command, stop_timeout_s=0.5), context)
    assert context.files_dir is not None
    pid = _logged_pid(Path(context.files_dir) / SERVER_LOG)
    groups.append(pid)
    started = time.monotonic()
    backend.unload()
    assert 0.5 <= time.monotonic() - started < 4.0
    assert _gone(pid)


def test_a_server_ignoring_sigterm_returns_sigkills_code(
    tmp_path: Path, script: Path, unused_port: int, groups: list[int]
) -> None:
    command = [sys.executable, str(script), str(unused_port), "ignore-term"]
    settings = ServerSettings(command=command, stop_timeout_s=0.5)
    server = ManagedServer(settings, tmp_path / SERVER_LOG)
    server.start()
    assert server.pid is not None
    groups.append(server.pid)
    with httpx2.Client(base_url=f"http://127.0.0.1:{unused_port}/v1") as client:
        server.wait_ready(answers(client, "/models"))
    assert server.stop() == -signal.SIGKILL


def test_stopping_a_server_stops_its_whole_process_group(
    backend: OpenAIBackend, context: WorkerContext, script: Path, unused_port: int,
    groups: list[int],
) -> None:  # fmt: skip
    """A process the server started that survives SIGTERM while the leader exits (an engine
    worker) is killed after stop_timeout_s: nothing keeps holding GPU memory."""
    command = [sys.executable, str(script), str(unused_port), "stubborn-child"]
    backend.load(_server_config(unused_port, command, stop_timeout_s=0.5), context)
    assert context.files_dir is not None
    log = Path(context.files_dir) / SERVER_LOG
    pid = _logged_pid(log)
    groups.append(pid)
    child = _logged_pid(log, "child pid")
    assert sorted(live_group_members(pid)) == sorted([pid, child])
    backend.unload()
    assert _gone(pid, within_s=1.0), f"left running: {live_group_members(pid)}"


def test_a_server_that_exits_before_answering_leaves_nothing_running(
    backend: OpenAIBackend, context: WorkerContext, script: Path, unused_port: int,
    groups: list[int],
) -> None:  # fmt: skip
    """A server whose leader exits before it answers is stopped with its whole group."""
    command = [sys.executable, str(script), str(unused_port), "crash-with-child"]
    with pytest.raises(ServerError, match=r"^the server exited with code 4 before it answered;"):
        backend.load(_server_config(unused_port, command, stop_timeout_s=0.5), context)
    assert context.files_dir is not None
    pid = _logged_pid(Path(context.files_dir) / SERVER_LOG)
    groups.append(pid)
    backend.unload()
    assert _gone(pid, within_s=1.0), f"left running: {live_group_members(pid)}"

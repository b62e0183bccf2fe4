"""Measuring a live server under load: `llem run --backend openai` against a real
OpenAI-compatible server, `transformers serve` on the built-in tiny model on the CPU, started
here or by llem itself (`openai.server`). Nothing is faked: the GPU is simply absent.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml

from llem_schema import ExperimentResult, StudyResult
from llem_store import ResultStore

TRANSFORMERS = Path(sys.executable).parent / "transformers"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(base_url: str) -> bool:
    try:
        return httpx2.get(f"{base_url}/models", timeout=2.0).status_code == 200
    except httpx2.HTTPError:
        return False


def serve_command(model: Path, port: int) -> list[str]:
    return [str(TRANSFORMERS), "serve", str(model), "--port", str(port), "--host", "127.0.0.1"]


@pytest.fixture(scope="session")
def tiny_model(llem_cache: Path) -> Path:
    from llem_backend_pytorch import ensure_tiny_model

    return ensure_tiny_model(llem_cache)


@pytest.fixture(scope="session")
def serve_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a server runs with: offline, and a Hugging Face cache directory that exists
    (transformers serve's /v1/models fails until it does)."""
    home = tmp_path_factory.mktemp("hf-home")
    (home / "hub").mkdir()
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def start_server(model: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        server = subprocess.Popen(
            serve_command(model, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | env,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while not answers(base_url):
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.25)
    return server


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def server(
    tiny_model: Path, serve_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A `transformers serve` of the tiny model for the module; its base URL."""
    port = free_port()
    process = start_server(tiny_model, port, serve_env, tmp_path_factory.mktemp("srv") / "log")
    yield f"http://127.0.0.1:{port}/v1"
    stop(process)


def llem(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def saved(stdout: str) -> ExperimentResult:
    match = re.search(r"^result: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return ExperimentResult.from_json(match[1].strip())


def client_run(server: str, model: Path, results: Path, *settings: str) -> list[str]:
    return [
        "run", "--backend", "openai", "--model", str(model), "--energy", "none", "-o",
        str(results), "--set", f"openai.base_url={server}", "--set", "warmup.count=1", *settings,
    ]  # fmt: skip


def max_in_flight(result: ExperimentResult) -> int:
    events = []
    for record in result.process_results[0].requests:
        assert record.start_s is not None
        assert record.e2e_ms is not None
        events += [(record.start_s, 1), (record.start_s + record.e2e_ms / 1000, -1)]
    level = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        level += change
        peak = max(peak, level)
    return peak


def test_completions_under_a_poisson_load_time_every_token(
    server: str, tiny_model: Path, tmp_path: Path, llem_env: dict[str, str]
) -> None:
    completed = llem(
        *client_run(server, tiny_model, tmp_path, "-n", "24", "--max-new-tokens", "8"),
        "--request-rate", "20",
        env=llem_env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = saved(completed.stdout)
    metrics = result.request_metrics
    assert metrics is not None
    assert (metrics.requests, metrics.failed_requests) == (24, 0)
    assert metrics.requested_rate_per_s == 20.0
    assert metrics.achieved_rate_per_s is not None
    assert 5.0 < metrics.achieved_rate_per_s < 80.0  # a Poisson draw of 24 arrivals
    (process,) = result.process_results
    assert process.model_info is not None
    assert process.model_info.details["token_counts"] == "usage"
    assert process.model_info.devices_unknown
    for record in process.requests:
        assert 1 <= record.output_tokens <= 8  # the server's usage, max_tokens sent
        assert len(record.itl_ms) == record.output_tokens - 1
        assert record.start_s is not None
        assert record.scheduled_s is not None
        assert 0.0 <= record.start_s - record.scheduled_s < 0.25  # sent when it was due
    starts = [r.scheduled_s or 0.0 for r in process.requests]
    assert starts == sorted(starts)
    assert len(set(starts)) == 24
    assert result.latency.ttft is not None
    assert result.latency.ttft.count == 24


def test_chat_with_a_concurrency_bound_keeps_at_most_that_many_in_flight(
    server: str, tiny_model: Path, tmp_path: Path, llem_env: dict[str, str]
) -> None:
    completed = llem(
        *client_run(server, tiny_model, tmp_path, "-n", "12", "--max-new-tokens", "6"),
        "--max-concurrency", "3", "--set", "openai.api=chat",
        env=llem_env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = saved(completed.stdout)
    assert result.request_metrics is not None
    assert result.request_metrics.failed_requests == 0
    assert result.output_tokens > 0
    assert max_in_flight(result) <= 3
    assert result.effective_config["openai"]["api"] == "chat"  # type: ignore[index,call-overload]


def test_a_server_that_is_not_there_is_one_line_before_anything_is_measured(
    tiny_model: Path, tmp_path: Path, llem_env: dict[str, str]
) -> None:
    gone = f"http://127.0.0.1:{free_port()}/v1"
    completed = llem(*client_run(gone, tiny_model, tmp_path, "-n", "4"), env=llem_env)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"error: no OpenAI-compatible server answers at {gone} (GET /models); start it, or "
        "let llem start it with openai.server\n"
    )
    assert not tmp_path.exists() or not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_timed_out_requests_are_recorded_and_the_run_saved_and_failed(
    server: str, tiny_model: Path, tmp_path: Path, llem_env: dict[str, str]
) -> None:
    completed = llem(
        *client_run(server, tiny_model, tmp_path, "-n", "4", "--max-new-tokens", "64"),
        "--set", "openai.timeout_s=0.001", "--set", "warmup.count=0",
        env=llem_env,
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines()[-1] == (
        "error: 4 of 4 requests failed (the result is saved; its warnings say why)"
    )
    result = saved(completed.stdout)
    errors = {r.error for r in result.process_results[0].requests}
    assert errors == {"timed out after 0.001 s"}
    (failed,) = [w for w in result.measurement_warnings if w.code == "failed_requests"]
    assert failed.message.startswith("4 of 4 requests failed")
    assert (failed.figures["failed"], failed.figures["requests"]) == (4, 4)
    with ResultStore(tmp_path / "llem.db", create=False) as store:
        assert store.get(result.experiment_id).status == "completed"  # measured: indexed


def test_a_server_killed_mid_run_fails_the_rest_and_keeps_what_finished(
    tiny_model: Path, serve_env: dict[str, str], tmp_path: Path, llem_env: dict[str, str]
) -> None:
    port = free_port()
    process = start_server(tiny_model, port, serve_env, tmp_path / "server.log")
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "llem", *client_run(
                f"http://127.0.0.1:{port}/v1", tiny_model, tmp_path / "results", "-n", "60",
                "--max-new-tokens", "4", "--request-rate", "10",
            )],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=llem_env,
        )  # fmt: skip
        assert run.stderr is not None
        for line in run.stderr:
            if line.startswith("inference"):
                break
        time.sleep(1.5)
        os.killpg(process.pid, signal.SIGKILL)
        stdout, rest = run.communicate(timeout=120)
    finally:
        stop(process)
    assert run.returncode == 1, rest
    result = saved(stdout)
    metrics = result.request_metrics
    assert metrics is not None
    assert 0 < metrics.failed_requests < 60
    assert metrics.requests == 60
    failed = [r for r in result.process_results[0].requests if r.error is not None]
    assert all(r.error and r.error.startswith(("ConnectError", "RemoteProtocolError", "ReadError"))
               for r in failed), {r.error for r in failed}  # fmt: skip
    assert result.latency.ttft is not None
    assert result.latency.ttft.count == 60 - metrics.failed_requests


def managed_config(
    model: Path, port: int, serve_env: dict[str, str], **extra: object
) -> dict[str, object]:
    return {
        "backend": "openai",
        "model": str(model),
        "n": 8,
        "max_new_tokens": 4,
        "warmup": {"count": 1},
        "energy": {"source": "none"},
        "openai": {
            "base_url": f"http://127.0.0.1:{port}/v1",
            "server": {
                "command": serve_command(model, port),
                "env": serve_env,
                "ready_timeout_s": 180,
            },
        },
    } | extra


def test_a_managed_server_is_started_waited_for_stopped_and_its_log_kept(
    tiny_model: Path, serve_env: dict[str, str], tmp_path: Path, llem_env: dict[str, str]
) -> None:
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(managed_config(tiny_model, port, serve_env)))
    completed = llem("run", str(config), "-o", str(tmp_path / "results"), env=llem_env)
    assert completed.returncode == 0, completed.stderr
    result = saved(completed.stdout)
    assert result.files == ["server.log"]
    directory = next((tmp_path / "results").glob("llem-tiny-*"))
    log = (directory / "server.log").read_text()
    assert log.startswith("--- llem starts: ")
    assert "Uvicorn running" in log
    info = result.process_results[0].model_info
    assert info is not None
    assert info.details["managed"] is True
    assert not answers(f"http://127.0.0.1:{port}/v1")  # stopped


def test_a_managed_server_that_fails_to_start_is_one_line_and_its_log_is_kept(
    tiny_model: Path, tmp_path: Path, llem_env: dict[str, str]
) -> None:
    port = free_port()
    crash = [sys.executable, "-c", "print('CUDA error: no device'); raise SystemExit(3)"]
    data = managed_config(tiny_model, port, {})
    data["openai"]["server"]["command"] = crash  # type: ignore[index]
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(data))
    completed = llem("run", str(config), "-o", str(tmp_path / "results"), env=llem_env)
    assert completed.returncode == 1
    last = completed.stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"error: process 0 failed: the server exited with code 3 before it answered; its log "
        r"\(server.log\) ends: --- llem starts: .* \| CUDA error: no device; no process had "
        r"finished; the files its backend left are kept in (.+)",
        last,
    )
    assert match, last
    kept = Path(match[1])
    assert kept == tmp_path / "results" / f"{kept.name.removesuffix('.failed')}.failed"
    assert "CUDA error: no device" in (kept / "server.log").read_text()
    assert not (tmp_path / "results" / ".staging" / kept.name.removesuffix(".failed")).exists()


def test_ctrl_c_saves_what_finished_marked_incomplete_and_stops_the_managed_server(
    tiny_model: Path, serve_env: dict[str, str], tmp_path: Path, llem_env: dict[str, str]
) -> None:
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(managed_config(
        tiny_model, port, serve_env, n=400, load={"request_rate": 5}
    )))  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "-m", "llem", "run", str(config), "-o", str(tmp_path / "results")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=llem_env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert run.stderr is not None
    for line in run.stderr:
        if line.startswith("inference"):
            break
    time.sleep(2.0)  # about ten requests sent, most of them answered
    assert answers(f"http://127.0.0.1:{port}/v1")
    run.send_signal(signal.SIGINT)
    stdout, rest = run.communicate(timeout=120)
    assert run.returncode == 130, rest
    assert not answers(f"http://127.0.0.1:{port}/v1")
    (last,) = rest.strip().splitlines()[-1:]
    assert re.fullmatch(
        r"error: interrupted; what finished is saved, marked incomplete, in .+", last
    )
    result = saved(stdout)
    (process,) = result.process_results
    assert process.interrupted
    assert 0 < len(process.requests) < 400
    assert result.aggregation.complete is False
    assert result.request_metrics is not None
    assert result.request_metrics.requests == len(process.requests)
    with ResultStore(tmp_path / "results" / "llem.db", create=False) as store:
        assert store.get(result.experiment_id).status == "incomplete"


def test_a_study_sweeps_the_request_rate_over_a_managed_server(
    tiny_model: Path, serve_env: dict[str, str], tmp_path: Path, llem_env: dict[str, str]
) -> None:
    port = free_port()
    study = {
        "name": "rates",
        "base": managed_config(tiny_model, port, serve_env),
        "sweep": {"load.request_rate": [4, 16]},
        "cycles": 1,
        "gap_between_experiments_s": 0,
    }
    study_file = tmp_path / "rates.yaml"
    study_file.write_text(yaml.safe_dump(study))
    completed = llem("study", str(study_file), "-o", str(tmp_path / "results"), env=llem_env,
                     timeout=600)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    (study_dir,) = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("rates_")]
    summary = StudyResult.from_json(study_dir)
    rates = [c.overrides["load.request_rate"] for c in summary.configurations]
    assert rates == [4, 16]
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert [e["status"] for e in manifest["entries"]] == ["completed", "completed"]
    for entry in manifest["entries"]:
        result = ExperimentResult.from_json(study_dir / entry["result_path"])
        assert result.files == ["server.log"]
        assert result.request_metrics is not None
        assert result.request_metrics.requested_rate_per_s in (4.0, 16.0)

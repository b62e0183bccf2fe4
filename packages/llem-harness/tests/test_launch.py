"""Runs of several worker processes, started by llem itself: one stream of progress, the
failing worker named and the others stopped, Ctrl-C and SIGTERM stopping every worker.

The workers need their backend from the registry (each process creates its own), so the
example plugin's echo backend and a failing variant are installed for real here: a
``.dist-info`` with its entry points on ``sys.path``, which the spawned workers inherit.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from llem_harness import ProgressEvent, RunFailedError, measure
from llem_harness import backends as registry
from llem_schema import ExperimentConfig, ExperimentResult
from llem_store import ExperimentFilter, ResultStore

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[3] / "examples" / "backend-plugin" / "src"

FAILING = """
    import os

    from llem_echo import EchoBackend


    class Failing(EchoBackend):
        @property
        def name(self):
            return "failing"

        def load(self, config, context):
            if os.environ.get("FAIL_IN") == "load" and context.process_index == 1:
                raise RuntimeError("no GPU left for process 1")
            return super().load(config, context)

        def run(self, requests):
            if os.environ.get("FAIL_IN") == "run" and os.environ["RANK"] == "1":
                raise RuntimeError("process 1 ran out of memory\\nCUDA detail")
            yield from super().run(requests)
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``echo`` and ``failing`` installed into a directory on ``sys.path``."""
    directory = tmp_path / "site"
    info = directory / "llem_test_backends-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llem-test-backends\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[llem.backends]\necho = llem_echo:EchoBackend\nfailing = failing_backend:Failing\n"
    )
    (directory / "failing_backend.py").write_text(textwrap.dedent(FAILING))
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    monkeypatch.syspath_prepend(str(directory))
    registry._load.cache_clear()
    registry._settings_model.cache_clear()
    return directory


def config(tmp_path: Path, backend: str, **settings: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "backend": backend,
        "n": 8,
        "num_processes": 2,
        "max_new_tokens": 3,
        "warmup": {"count": 1},
        "energy": {"source": "none"},
        "output_dir": str(tmp_path / "results"),
        backend: {"batch_size": 2, "token_delay_ms": 1},
    }
    return ExperimentConfig.model_validate(data | settings)


def test_two_workers_measure_their_shares_and_report_one_stream(site: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = measure(config(tmp_path, "echo"), progress=events.append)
    assert [p.process_index for p in result.process_results] == [0, 1]
    shares = [[r.request_index for r in p.requests] for p in result.process_results]
    assert shares == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert result.aggregation.complete
    assert result == ExperimentResult.from_json(
        next(p for p in (tmp_path / "results").iterdir() if p.name.startswith("tiny_echo_"))
    )
    inference = [e for e in events if e.stage == "inference"]
    assert (inference[0].kind, inference[-1].kind) == ("start", "end")
    assert [e.kind for e in inference].count("end") == 1
    assert (inference[-1].done, inference[-1].total) == (8, 8)


@pytest.mark.parametrize("where", ["load", "run"])
def test_a_failing_worker_is_named_and_the_others_are_stopped(
    site: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    where: str,
) -> None:
    monkeypatch.setenv("FAIL_IN", where)
    started = time.monotonic()
    with pytest.raises(RunFailedError) as caught:
        measure(config(tmp_path, "failing"))
    # the others were stopped, keeping nothing, and no worker printed a traceback
    assert "Traceback" not in capfd.readouterr().err
    assert not caught.value.staged
    assert not list((tmp_path / "results").glob(".staging/*/process_*.json"))
    assert time.monotonic() - started < 60  # the other worker did not wait on at the barrier
    reason = {
        "load": "process 1 failed: RuntimeError: no GPU left for process 1",
        "run": "process 1 failed: RuntimeError: process 1 ran out of memory",
    }[where]
    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"{reason}; ")
    with ResultStore(tmp_path / "results" / "llem.db", create=False) as store:
        row = store.get(caught.value.experiment_id)
    assert (row.status, row.error) == ("failed", reason)


def workers_of(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the run and every worker it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
@pytest.mark.parametrize(
    ("signum", "group", "code"),
    [
        (signal.SIGINT, True, 130),  # Ctrl-C in a terminal: the whole foreground group
        (signal.SIGTERM, False, 143),  # kill PID
        (signal.SIGTERM, True, 143),  # a scheduler stopping the job: every process
    ],
)
def test_ctrl_c_and_sigterm_save_what_every_worker_finished_as_an_interruption(
    site: Path, tmp_path: Path, signum: signal.Signals, group: bool, code: int
) -> None:
    """The workers are asked to stop, stage what finished and exit; the run is saved marked
    incomplete with every process's finished requests, as a one-process run is, and its exit
    code says which signal stopped it."""
    marker = f"LLEM_TEST_RUN={uuid.uuid4().hex}"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE_PLUGIN)]),
        marker.split("=")[0]: marker.split("=")[1],
    }
    results = tmp_path / "results"
    command = [sys.executable, "-m", "llem", "run", "--backend", "echo", "--num-processes", "2"]
    command += ["-n", "400", "--max-new-tokens", "8", "--set", "echo.token_delay_ms=20"]
    command += ["-o", str(results)]
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
        # a shell without job control starts background jobs with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as run:
        assert run.stderr is not None
        inference = 0
        for line in run.stderr:
            inference += line.startswith("inference")
            if inference == 2:  # started, then some requests done
                break
        else:
            pytest.fail("llem run ended before its inference started")
        assert len(workers_of(marker)) >= 3  # the run, its two workers (and mp's tracker)
        if group:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        _, rest = run.communicate(timeout=60)
    assert run.returncode == code, rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; what finished is saved, marked incomplete, in ")
    assert "process 0 failed" not in rest
    assert "KeyboardInterrupt" not in rest
    deadline = time.monotonic() + 15
    while workers_of(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_of(marker) == []
    with ResultStore(results / "llem.db", create=False) as store:
        (row,) = store.list_experiments(ExperimentFilter(statuses=None))
    assert row.status == "incomplete"
    assert row.result_path is not None
    result = ExperimentResult.from_json(row.result_path)
    assert [process.interrupted for process in result.process_results] == [True, True]
    said = [w.message for w in result.measurement_warnings if w.code == "interrupted"]
    for process in result.process_results:  # each process's own count, not the first's
        finished = len(process.requests)
        assert any(f"interrupted: {finished} of " in m for m in said), said
    assert all(process.requests for process in result.process_results)
    assert 0 < sum(len(process.requests) for process in result.process_results) < 400
    assert not result.aggregation.complete


def test_sigterm_stops_a_one_process_run_as_ctrl_c_does_with_exit_143(
    site: Path, tmp_path: Path
) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE_PLUGIN)])}
    results = tmp_path / "results"
    command = [sys.executable, "-m", "llem", "run", "--backend", "echo", "-n", "400"]
    command += ["--max-new-tokens", "8", "--set", "echo.token_delay_ms=20", "-o", str(results)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        assert run.stderr is not None
        inference = 0
        for line in run.stderr:
            inference += line.startswith("inference")
            if inference == 2:
                break
        else:
            pytest.fail("llem run ended before its inference started")
        run.send_signal(signal.SIGTERM)
        _, rest = run.communicate(timeout=60)
    assert run.returncode == 143, rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; what finished is saved, marked incomplete, in ")
    with ResultStore(results / "llem.db", create=False) as store:
        (row,) = store.list_experiments(ExperimentFilter(statuses=None))
    assert row.status == "incomplete"

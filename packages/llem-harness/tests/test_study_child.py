"""A run's child process: it stops when the study process dies, its spec round-trips, and the
study reads how it ended from its output."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llem_harness.errors import EXIT_USAGE
from llem_harness.study.child import main
from llem_harness.study.launcher import (
    default_command,
    describe_exit,
    failure_reason,
    reported_result,
)
from llem_harness.study.spec import ChildSpec
from llem_schema.testing import example_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")

# The "study process": starts a child that watches it (and sleeps), prints the child's pid,
# then waits to be killed.
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import os, time; from llem_harness.study.child import watch_parent; "
         f"watch_parent({os.getpid()}, interval_s=0.1); time.sleep(60)"],
        start_new_session=True,
    )
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


def test_a_child_stops_when_the_study_process_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        time.sleep(0.5)
        assert not gone(child_pid)
        parent.kill()
    deadline = time.monotonic() + 10
    while not gone(child_pid):
        assert time.monotonic() < deadline, "the orphaned child is still running"
        time.sleep(0.05)


def test_a_spec_round_trips_and_an_unreadable_one_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ChildSpec(
        config=example_config(output_dir=str(tmp_path)),
        experiment_id="tiny_pytorch_2026-11-22T14-03-05_0a1b2c",
        study_id="s_2026-11-22T14-03-05_0a1b2c",
        run_index=3,
        store_path=str(tmp_path / "llem.db"),
        parent_pid=os.getpid(),
        device="1",
    )
    file = tmp_path / "runs" / "run_0003.json"
    spec.save(file)
    assert ChildSpec.load(file) == spec

    unstored = spec.model_copy(update={"store_path": None, "device": None})
    unstored.save(file)
    assert ChildSpec.load(file) == unstored

    file.write_text("{")
    assert main([str(file)]) == EXIT_USAGE
    out = capsys.readouterr().out
    assert out.startswith(f"error: cannot read the run's spec {file}: ")
    assert out.count("\n") == 1


def test_a_child_needs_exactly_one_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert capsys.readouterr().out == (
        "error: usage: python -m llem_harness.study.child SPEC.json\n"
    )


def test_the_study_runs_each_child_as_a_module_of_the_harness(tmp_path: Path) -> None:
    spec_file = tmp_path / "runs" / "run_0000.json"
    assert default_command(spec_file) == [
        sys.executable,
        "-m",
        "llem_harness.study.child",
        str(spec_file),
    ]
    spec_file.parent.mkdir()
    spec_file.write_text("{")
    ran = subprocess.run(
        default_command(spec_file), capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == EXIT_USAGE
    assert ran.stdout.startswith(f"error: cannot read the run's spec {spec_file}: ")


def test_how_a_child_ended_is_read_from_its_output() -> None:
    output = "loading ...\nerror: model directory /nope does not exist\n"
    assert failure_reason(output, 1) == "model directory /nope does not exist"
    assert failure_reason("loading ...\ninference: 3/10\n", -9) == (
        "killed by signal 9 (SIGKILL); last output: inference: 3/10"
    )
    assert failure_reason("", 3) == "exited with code 3, printing nothing"
    assert describe_exit(-int(signal.SIGTERM)) == "killed by signal 15 (SIGTERM)"
    assert reported_result("x\nresult: /a/b\nresult: /a/c \n") == Path("/a/c")
    assert reported_result("error: no\n") is None

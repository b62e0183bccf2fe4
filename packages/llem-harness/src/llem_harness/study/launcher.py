"""Start a run's child process, signal its process group, and read how it ended from its log.

Each child starts in a new session (its own process group: signals to it reach the worker
processes it launches too, and a Ctrl-C at the terminal reaches only the study, which decides
what to forward). Its stdout and stderr go to the run's log, which the parent locks first so
the lock lives as long as any process of the run does (see :mod:`llem_harness.study.layout`). The
command is injectable, so tests can run a small script instead of a model.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from llem_persistence.locks import try_exclusive

__all__ = [
    "ChildCommand",
    "ChildProcess",
    "Launcher",
    "default_command",
    "describe_exit",
    "failure_reason",
    "reported_result",
]

ChildCommand = Callable[[Path], list[str]]
"""The command line of a child, given its spec file."""

_RESULT_LINE: Final = re.compile(r"^result: (.+)$", re.MULTILINE)
_ERROR_PREFIX: Final = "error: "


def default_command(spec_file: Path) -> list[str]:
    """``python -m llem_harness.study.child SPEC`` with this interpreter."""
    return [sys.executable, "-m", "llem_harness.study.child", str(spec_file)]


@dataclass
class ChildProcess:
    """A running (or ended) child and the part of its log this attempt wrote."""

    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_file: Path
    log_offset: int
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the child's process group while the child is not yet reaped
        (so its process group id cannot belong to anyone else)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> int:
        """SIGKILL the process group and reap the child; returns its exit code."""
        self.signal_group(signal.SIGKILL)
        return self.process.wait()

    def output(self) -> str:
        """What this attempt wrote to the log (the child's output, after the header)."""
        self.log.flush()
        with self.log_file.open("rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        """Close the parent's copy of the log (its lock goes with the child's copy)."""
        self.log.close()


@dataclass(frozen=True)
class Launcher:
    """Starts children with ``command`` in ``environment`` (default: this process's)."""

    command: ChildCommand = default_command
    environment: Mapping[str, str] | None = None

    def start(
        self, spec_file: Path, log_file: Path, *, header: str, device: str | None = None
    ) -> ChildProcess:
        """Append ``header`` to the log, lock it, and start the child pinned to ``device``."""
        env = dict(os.environ if self.environment is None else self.environment)
        env["PYTHONUNBUFFERED"] = "1"  # a crash loses no output
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
            # number devices as nvidia-smi and NVML do, unless the user chose otherwise
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log = log_file.open("ab")
        try:
            try_exclusive(log)
            log.write(header.rstrip("\n").encode("utf-8") + b"\n")
            log.flush()
            offset = log.tell()
            process = subprocess.Popen(
                self.command(spec_file),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            log.close()
            raise
        return ChildProcess(process=process, log=log, log_file=log_file, log_offset=offset)


def reported_result(output: str) -> Path | None:
    """The result directory a child's output names on its ``result:`` line, if any."""
    found = _RESULT_LINE.findall(output)
    return Path(found[-1].strip()) if found else None


def failure_reason(output: str, returncode: int) -> str:
    """Why a child failed, in one line: its last ``error: ...`` line (without the prefix);
    without one, how it ended and the last line it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(_ERROR_PREFIX) and line[len(_ERROR_PREFIX) :].strip():
            return line[len(_ERROR_PREFIX) :].strip()
    ended = describe_exit(returncode)
    return f"{ended}; last output: {lines[-1]}" if lines else f"{ended}, printing nothing"


def describe_exit(returncode: int) -> str:
    """``exited with code 1`` / ``killed by signal 9 (SIGKILL)``."""
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-returncode}{name}"
    return f"exited with code {returncode}"

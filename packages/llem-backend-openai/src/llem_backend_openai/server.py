"""A server llem starts and stops itself: a subprocess with its output in a log file, waited
for until it answers, stopped with SIGTERM and, after a grace period, SIGKILL.

It runs in a process group of its own, so stopping it stops what it started too (a server's
engine workers). If llem dies instead of stopping it, the server is left running: its log
names the process to stop.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

import httpx2

from llem_backend_openai.errors import ServerError
from llem_backend_openai.settings import ServerSettings

__all__ = ["ManagedServer"]

_POLL_S: Final = 0.25
_LOG_TAIL_LINES: Final = 5


class ManagedServer:
    """One server process; :meth:`start` it, :meth:`wait_ready`, then :meth:`stop` it."""

    def __init__(self, settings: ServerSettings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the server's command, its output going to the log file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        command = " ".join(self.settings.command)
        self._log.write(f"--- llem starts: {command}\n".encode())
        self._log.flush()
        try:
            self._process = subprocess.Popen(
                self.settings.command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=os.environ | self.settings.env,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise ServerError(
                f"cannot start the server ({command}): {exc.strerror or exc}"
            ) from None

    def wait_ready(self, probe: Callable[[], bool]) -> float:
        """Wait until ``probe()`` is true (the server answers); returns the seconds it took.

        A server that exits, or does not answer within ``ready_timeout_s``, is a
        :class:`ServerError` quoting the end of its log; it is stopped first.
        """
        started = time.monotonic()
        deadline = started + self.settings.ready_timeout_s
        while True:
            code = self._process.poll() if self._process is not None else None
            if code is not None:
                self.stop()  # what it started may still run
                raise ServerError(
                    f"the server exited with code {code} before it answered; "
                    f"its log ({self.log_file.name}) ends: {self._log_tail()}"
                )
            if probe():
                return time.monotonic() - started
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"the server did not answer within {self.settings.ready_timeout_s:g} s; "
                    f"its log ({self.log_file.name}) ends: {self._log_tail()}"
                )
            time.sleep(_POLL_S)

    def stop(self) -> int | None:
        """SIGTERM the server's process group (the server and what it started), SIGKILL
        what is left of it after ``stop_timeout_s``; returns the server's exit code (None if
        it never started)."""
        process = self._process
        if process is None:
            return None
        group = process.pid  # the leader of its own session: the group's id
        try:
            _signal_group(group, signal.SIGTERM)
            deadline = time.monotonic() + self.settings.stop_timeout_s
            while _group_alive(group) and time.monotonic() < deadline:
                process.poll()  # reap the leader as soon as it exits
                time.sleep(_POLL_S / 5)
            if _group_alive(group):
                _signal_group(group, signal.SIGKILL)
            process.wait()
            return process.returncode
        finally:
            if _group_alive(group):  # interrupted on the way (a second Ctrl-C): no survivors
                _signal_group(group, signal.SIGKILL)
            self._process = None
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(unreadable)"
        return " | ".join(line.strip() for line in lines[-_LOG_TAIL_LINES:]) or "(empty)"


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def answers(client: httpx2.Client, path: str) -> Callable[[], bool]:
    """A probe: whether GET ``path`` returns 200 now."""

    def probe() -> bool:
        try:
            return client.get(path, timeout=2.0).status_code == 200
        except httpx2.HTTPError:
            return False

    return probe

"""Progress of the long steps (baseline, model load, warmup, inference).

A Rich progress bar on a terminal; plain lines otherwise (CI logs, pipes, worker processes),
so output stays readable when it is not a TTY.
"""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TextIO

__all__ = ["PlainReporter", "Reporter", "RichReporter", "SilentReporter", "make_reporter"]

Advance = Callable[[int], None]


class Reporter(Protocol):
    """Where the harness says what it is doing."""

    def stage(self, name: str, total: int | None = None) -> AbstractContextManager[Advance]:
        """A long step; the context yields ``advance(n)`` for steps with a known total."""
        ...

    def note(self, message: str) -> None:
        """A one-line remark (what was chosen, what was skipped)."""
        ...


def _ignore(n: int = 1) -> None:
    return None


class SilentReporter:
    """Says nothing (processes other than rank 0, tests)."""

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        yield _ignore

    def note(self, message: str) -> None:
        return None


class PlainReporter:
    """One line when a step starts and ends, and at every tenth of a counted step."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "") -> None:
        self._stream = stream or sys.stderr
        self._prefix = prefix

    def _say(self, text: str) -> None:
        print(f"{self._prefix}{text}", file=self._stream, flush=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        started = time.perf_counter()
        done = 0
        reported_tenths = 0
        self._say(f"{name} ...")

        def advance(n: int = 1) -> None:
            nonlocal done, reported_tenths
            done += n
            tenths = done * 10 // total if total else 0
            if reported_tenths < tenths < 10:
                self._say(f"{name}: {done}/{total}")
                reported_tenths = tenths

        yield advance
        counted = f" {done}/{total}" if total else ""
        self._say(f"{name}: done{counted} in {time.perf_counter() - started:.1f} s")

    def note(self, message: str) -> None:
        self._say(message)


class RichReporter:
    """A Rich progress bar per step, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if total:
            columns.append(MofNCompleteColumn())
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self._console, transient=False) as progress:
            task = progress.add_task(name, total=total)

            def advance(n: int = 1) -> None:
                progress.advance(task, n)

            yield advance
            progress.update(task, completed=total if total else 1, total=total or 1)

    def note(self, message: str) -> None:
        self._console.print(message, highlight=False)


def make_reporter(*, rank: int = 0) -> Reporter:
    """Rich on an interactive terminal for rank 0, plain lines otherwise."""
    if rank != 0:
        return SilentReporter()
    if sys.stderr.isatty():
        return RichReporter()
    return PlainReporter()

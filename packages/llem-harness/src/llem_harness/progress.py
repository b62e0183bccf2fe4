"""Progress of the long steps (baseline, model load, warmup, inference) as events.

The harness reports to a callback, ``progress(event)``, and draws nothing itself: the ``llem``
command renders the events as progress bars, a notebook can pass ``print``, and
:class:`PrintProgress` writes plain lines (logs, pipes, a study's run logs).

A stage is ``start``, any number of ``advance`` (``done`` of ``total`` so far), then ``end``;
a ``note`` is a one-line remark between stages. In a run of several processes the events of
all processes are merged into one stream: a stage's ``total`` is every process's total.
"""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal, TextIO

__all__ = [
    "Advance",
    "MergedProgress",
    "PrintProgress",
    "ProgressCallback",
    "ProgressEvent",
    "Stages",
]

Advance = Callable[[int], None]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of the harness's progress."""

    kind: Literal["start", "advance", "end", "note"]
    stage: str = ""
    """The stage: ``baseline idle power (15 s)``, ``loading llem/tiny``, ``warmup``, ..."""
    done: int = 0
    """Units of the stage done so far (requests, warmup steps)."""
    total: int | None = None
    """Units the stage has, where known."""
    elapsed_s: float = 0.0
    """Seconds since the stage started (at ``end``: how long it took)."""
    message: str = ""
    """The remark of a ``note``."""

    def __str__(self) -> str:
        if self.kind == "note":
            return self.message
        counted = f" {self.done}/{self.total}" if self.total else ""
        if self.kind == "start":
            return f"{self.stage} ..."
        if self.kind == "advance":
            return f"{self.stage}:{counted}"
        return f"{self.stage}: done{counted} in {self.elapsed_s:.1f} s"


ProgressCallback = Callable[[ProgressEvent], None]


def _ignore(event: ProgressEvent) -> None:
    return None


class Stages:
    """What the harness reports through: stages as context managers, notes as lines, each
    turned into events for ``callback`` (none: reported nowhere)."""

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self.callback = callback or _ignore

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Advance]:
        """A long step; the context yields ``advance(n)`` for steps with a known total."""
        started = time.perf_counter()
        done = 0
        self.callback(ProgressEvent("start", name, total=total))

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            self.callback(
                ProgressEvent("advance", name, done, total, elapsed_s=time.perf_counter() - started)
            )

        yield advance
        self.callback(
            ProgressEvent("end", name, done, total, elapsed_s=time.perf_counter() - started)
        )

    def note(self, message: str) -> None:
        """A one-line remark (what was chosen, what was skipped)."""
        self.callback(ProgressEvent("note", message=message))


class PrintProgress:
    """A progress callback writing plain lines: one when a stage starts and ends, one at
    every tenth of a counted stage, and each note."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "") -> None:
        self._stream = stream
        self._prefix = prefix
        self._tenths: dict[str, int] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "advance":
            tenths = event.done * 10 // event.total if event.total else 0
            if not self._tenths.get(event.stage, 0) < tenths < 10:
                return
            self._tenths[event.stage] = tenths
        elif event.kind == "start":
            self._tenths[event.stage] = 0
        print(f"{self._prefix}{event}", file=self._stream or sys.stderr, flush=True)


class MergedProgress:
    """The events of several processes as one stream (see the module docstring).

    A stage starts when the first process starts it and ends when every process has ended
    it; ``done`` and ``total`` add up over the processes (a process that has not started
    the stage yet counts as the mean of those that have). Notes of processes other than the first say which process they come from.
    """

    def __init__(self, callback: ProgressCallback, num_processes: int) -> None:
        self._callback = callback
        self._count = num_processes
        self._done: dict[str, dict[int, int]] = {}
        self._totals: dict[str, dict[int, int | None]] = {}
        self._ended: dict[str, set[int]] = {}
        self._started: dict[str, float] = {}

    def __call__(self, process_index: int, event: ProgressEvent) -> None:
        if self._count == 1:
            self._callback(event)
            return
        if event.kind == "note":
            prefix = "" if process_index == 0 else f"process {process_index}: "
            self._callback(replace(event, message=prefix + event.message))
            return
        stage = event.stage
        if event.kind == "start":
            self._totals.setdefault(stage, {})[process_index] = event.total
            self._done.setdefault(stage, {})[process_index] = 0
            if stage not in self._started:
                self._started[stage] = time.perf_counter()
                self._callback(replace(event, total=self._total(stage)))
            return
        self._done.setdefault(stage, {})[process_index] = event.done
        merged = replace(
            event,
            done=sum(self._done[stage].values()),
            total=self._total(stage),
            elapsed_s=time.perf_counter() - self._started.get(stage, time.perf_counter()),
        )
        if event.kind == "advance":
            self._callback(merged)
            return
        ended = self._ended.setdefault(stage, set())
        ended.add(process_index)
        if len(ended) == self._count:
            self._callback(merged)

    def _total(self, stage: str) -> int | None:
        """Every process's total; a process that has not started the stage yet is counted
        as the mean of those that have, so a run's progress counts all its requests from the
        start (``17/200``, not ``17/100`` while one process is still loading)."""
        totals = list(self._totals.get(stage, {}).values())
        if not totals or None in totals:
            return None
        known = sum(t for t in totals if t is not None)
        return known + round((self._count - len(totals)) * known / len(totals))

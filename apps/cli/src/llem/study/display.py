"""How a study shows its progress: a Rich bar over the runs on a terminal, one plain line per
run start and end otherwise (CI logs, pipes, tests)."""

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from pydantic import JsonValue

from llem.study.gaps import countdown_text
from llem_schema.study_plan import format_overrides

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["PlainDisplay", "RichDisplay", "RunLabel", "StudyDisplay", "make_display"]


@dataclass(frozen=True)
class RunLabel:
    """``[3/8] point 1 (pytorch.batch_size=8) cycle 0``, and the device in parallel mode."""

    run_index: int
    total: int
    point_index: int
    overrides: dict[str, JsonValue]
    cycle: int
    device: str | None = None

    def __str__(self) -> str:
        text = (
            f"[{self.run_index + 1}/{self.total}] point {self.point_index} "
            f"({format_overrides(self.overrides)}) cycle {self.cycle}"
        )
        return text if self.device is None else f"{text} on device {self.device}"


class StudyDisplay(Protocol):
    """Where the study runner reports."""

    def begin(self, total: int, done: int) -> None:
        """``total`` runs in the study, ``done`` of them finished before this session."""
        ...

    def started(self, label: RunLabel) -> None: ...

    def finished(self, label: RunLabel, outcome: str, *, counted: bool = True) -> None:
        """A run ended: ``completed in 12.3 s`` or ``failed: why``; ``counted`` advances the bar
        (an interrupted run goes back to pending and does not)."""
        ...

    def settling(self, remaining_s: float | None, *, skippable: bool) -> None:
        """A gap has ``remaining_s`` to go (called repeatedly); ``None``: no gap now."""
        ...

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


class PlainDisplay:
    """One line per run start and end, one line when a gap starts; nothing redrawn."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._settling = False

    def _say(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def begin(self, total: int, done: int) -> None:
        return None

    def started(self, label: RunLabel) -> None:
        self._say(f"{label}: started")

    def finished(self, label: RunLabel, outcome: str, *, counted: bool = True) -> None:
        self._say(f"{label}: {outcome}")

    def settling(self, remaining_s: float | None, *, skippable: bool) -> None:
        if remaining_s is None:
            self._settling = False
        elif not self._settling:
            self._settling = True
            self._say(countdown_text(remaining_s, skippable=skippable))

    def note(self, message: str) -> None:
        self._say(message)

    def end(self) -> None:
        return None


class RichDisplay:
    """A progress bar over the runs on stderr; its line names the running runs, or counts a
    gap down."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._running: dict[int, RunLabel] = {}
        self._countdown: str | None = None

    def begin(self, total: int, done: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._task = self._progress.add_task("study", total=total, completed=done)
        self._progress.start()

    def _refresh(self) -> None:
        if self._progress is None or self._task is None:
            return
        if self._countdown is not None and not self._running:
            description = self._countdown
        else:
            description = "; ".join(str(label) for label in self._running.values()) or "study"
        self._progress.update(self._task, description=description)

    def started(self, label: RunLabel) -> None:
        self._running[label.run_index] = label
        self._refresh()

    def finished(self, label: RunLabel, outcome: str, *, counted: bool = True) -> None:
        self._running.pop(label.run_index, None)
        self._console.print(f"{label}: {outcome}")
        if counted and self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
        self._refresh()

    def settling(self, remaining_s: float | None, *, skippable: bool) -> None:
        countdown = (
            None if remaining_s is None else countdown_text(remaining_s, skippable=skippable)
        )
        if countdown != self._countdown:
            self._countdown = countdown
            self._refresh()

    def note(self, message: str) -> None:
        self._console.print(message)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def make_display(*, interactive: bool) -> StudyDisplay:
    """Rich on a terminal, plain lines otherwise."""
    return RichDisplay() if interactive else PlainDisplay()

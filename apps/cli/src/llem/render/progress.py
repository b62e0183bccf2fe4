"""Progress on a terminal: Rich bars for the harness's progress events and for a study's
runs. Off a terminal the harness's plain lines serve (``PrintProgress``, ``PlainDisplay``)."""

import sys
from typing import TYPE_CHECKING

from llem_harness.progress import PrintProgress, ProgressEvent
from llem_harness.study.display import PlainDisplay, RunLabel, StudyDisplay
from llem_harness.study.gaps import countdown_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["RichProgress", "RichStudyDisplay", "make_progress", "make_study_display"]


class RichProgress:
    """A progress callback drawing one Rich bar per stage, on stderr.

    Events of a stage other than the current bar's (the late end of a stage the processes of
    a run finished at different times) are let go. :meth:`close` stops the bar of a run that
    ended without ending its stage.
    """

    def __init__(self, console: "Console | None" = None) -> None:
        from rich.console import Console

        self._console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._stage: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        if event.kind == "note":
            self._console.print(event.message, highlight=False)
        elif event.kind == "start":
            self.close()
            columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
            columns += [MofNCompleteColumn()] if event.total else []
            columns.append(TimeElapsedColumn())
            self._progress = Progress(*columns, console=self._console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(event.stage, total=event.total)
            self._stage = event.stage
        elif self._progress is not None and self._task is not None and event.stage == self._stage:
            if event.kind == "advance":
                self._progress.update(self._task, completed=event.done, total=event.total)
            else:
                total = event.total or 1
                self._progress.update(self._task, completed=event.done or total, total=total)
                self.close()

    @property
    def stage(self) -> str | None:
        """The stage whose bar is drawn now, if any."""
        return self._stage

    def close(self) -> None:
        """Stop the current bar, if any (also after a failure: the terminal is left clean)."""
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._task, self._stage = None, None, None


def make_progress() -> RichProgress | PrintProgress:
    """Rich bars on an interactive terminal, plain lines otherwise."""
    return RichProgress() if sys.stderr.isatty() else PrintProgress()


class RichStudyDisplay:
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


def make_study_display(*, interactive: bool) -> StudyDisplay:
    """A Rich bar over the runs on a terminal, plain lines otherwise."""
    return RichStudyDisplay() if interactive else PlainDisplay()

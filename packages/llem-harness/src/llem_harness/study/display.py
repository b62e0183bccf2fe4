"""How a study reports its progress: the :class:`StudyDisplay` it calls, and
:class:`PlainDisplay`, one plain line per run start and end (CI logs, pipes, tests); the
``llem`` command draws a progress bar instead."""

import sys
from dataclasses import dataclass
from typing import Protocol, TextIO

from pydantic import JsonValue

from llem_harness.study.gaps import countdown_text
from llem_schema.study_plan import format_overrides

__all__ = ["PlainDisplay", "RunLabel", "StudyDisplay"]


@dataclass(frozen=True)
class RunLabel:
    """``[3/8] point 1 (precision=fp16) cycle 0``, and the device in parallel mode."""

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

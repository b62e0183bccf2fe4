"""Thermal settling between runs: how long each gap is, and Enter to skip one.

The rule: no gap before the first run of a session or after the last; between two runs,
``gap_between_cycles_s`` when the cycle changes, else ``gap_between_experiments_s``.
"""

import math
import select
import sys
from collections.abc import Sequence
from itertools import pairwise
from typing import Protocol, TextIO

from llem_schema import StudyConfig

__all__ = [
    "EnterSkips",
    "NeverSkip",
    "SkipInput",
    "countdown_text",
    "gap_s",
    "gaps_between",
]


def gap_s(
    study: StudyConfig, previous: tuple[int, int] | None, following: tuple[int, int]
) -> float:
    """The pause before the run ``following`` = (point, cycle) that comes after the run
    ``previous`` (``None``: no run before it in this session, so no pause).

    The cycle gap, instead of the experiment gap, comes before a new cycle: in interleaved
    and shuffled orders when a pass over the points begins again, in sequential order
    between two cycles of the same point (moving on to the next point is an experiment gap).
    """
    if previous is None:
        return 0.0
    (point_before, cycle_before), (point_after, cycle_after) = previous, following
    new_cycle = cycle_before != cycle_after and (
        study.order != "sequential" or point_before == point_after
    )
    return study.gap_between_cycles_s if new_cycle else study.gap_between_experiments_s


def gaps_between(study: StudyConfig, runs: Sequence[tuple[int, int]]) -> list[float]:
    """The pause before each run after the first, for (point, cycle) runs in this order."""
    return [gap_s(study, before, after) for before, after in pairwise(runs)]


def countdown_text(remaining_s: float, *, skippable: bool) -> str:
    """``thermal settling: 42 s, Enter skips``."""
    text = f"thermal settling: {math.ceil(max(0.0, remaining_s))} s"
    return text + ", Enter skips" if skippable else text


class SkipInput(Protocol):
    """Whether the user asked to end the current gap now."""

    skippable: bool

    def pressed(self) -> bool:
        """True once per Enter pressed since the last call; never blocks."""
        ...

    def drain(self) -> None:
        """Forget what was typed so far: only an Enter pressed during a gap skips it."""
        ...


class NeverSkip:
    """No terminal to read: gaps run their full length."""

    skippable = False

    def pressed(self) -> bool:
        return False

    def drain(self) -> None:
        return None


class EnterSkips:
    """Enter on a terminal's stdin (a whole line, read without blocking) skips the gap."""

    skippable = True

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdin
        self._closed = False

    def pressed(self) -> bool:
        if self._closed:
            return False
        try:
            ready, _, _ = select.select([self._stream], [], [], 0)
            line = self._stream.readline() if ready else None
        except (OSError, ValueError):  # closed, or not selectable here
            self._closed = True
            return False
        if line == "":  # end of input (Ctrl-D): stop asking
            self._closed = True
        return bool(line)

    def drain(self) -> None:
        while self.pressed():
            pass

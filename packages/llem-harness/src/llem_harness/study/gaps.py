"""Thermal settling between runs: how long each gap is, Enter to skip one, and the GPU
thermometer of the temperature-based cooldown (``gap: {until_temperature_c, max_s}``).

The rule: no gap before the first run of a session or after the last; between two runs,
``gap_between_cycles_s`` when the cycle changes, else ``gap_between_experiments_s``; then,
with a cooldown, until the GPUs of the next run read at most ``until_temperature_c``, or
``max_s`` after the previous run ended.
"""

import logging
import math
import os
import select
import sys
from collections.abc import Sequence
from itertools import pairwise
from typing import Protocol, TextIO

from llem_energy import NvmlDevice, NvmlSession, resolve_gpu_indices
from llem_schema import LlemError, StudyConfig

logger = logging.getLogger(__name__)

__all__ = [
    "EnterSkips",
    "NeverSkip",
    "NvmlThermometer",
    "SkipInput",
    "Thermometer",
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


class Thermometer(Protocol):
    """The temperature of the GPUs a lane of the study runs on."""

    def hottest_c(self, device: str | None) -> float | None:
        """The hottest of the GPUs ``device`` names (a CUDA_VISIBLE_DEVICES value; None:
        those this process sees), deg C; None where none can be read."""
        ...


class NvmlThermometer:
    """Reads GPU temperatures through NVML, opened on first use and kept open. A lane whose
    GPUs cannot be read gets no cooldown (said once); NVML that cannot be opened, none."""

    def __init__(self) -> None:
        self._session: NvmlSession | None = None
        self._devices: dict[int, NvmlDevice] = {}
        self._failed = False
        self._failed_lanes: set[str | None] = set()

    def hottest_c(self, device: str | None) -> float | None:
        if self._failed or device in self._failed_lanes:
            return None
        try:
            if self._session is None:
                self._session = NvmlSession.open()
        except LlemError as exc:
            self._give_up(f"the cooldown cannot read GPU temperatures ({exc})")
            return None
        visible = device if device is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            readings = []
            for index in resolve_gpu_indices(self._session, visible):
                if index not in self._devices:
                    self._devices[index] = self._session.device(index)
                readings.append(self._devices[index].temperature_c())
        except LlemError as exc:
            self._failed_lanes.add(device)
            logger.warning(
                "the cooldown cannot read the GPUs of lane %s (%s): only the fixed gaps apply "
                "there",
                visible or "all",
                exc,
            )
            return None
        known = [reading for reading in readings if reading is not None]
        return max(known) if known else None

    def _give_up(self, reason: str) -> None:
        logger.warning("%s: only the fixed gaps apply", reason)
        self._failed = True
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
            self._devices.clear()

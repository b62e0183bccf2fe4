"""The study's run loop: start each remaining run in its own child process, in run order, one
at a time (or one per device with ``--parallel``), pause between runs, enforce the timeout,
and record every status change in the manifest.

Only this loop, in the main thread, touches the manifest: ``running`` (with ``started_at`` and
the ``experiment_id`` chosen here, before the child starts) -> ``completed`` (``finished_at``,
``result_path``) or ``failed`` (``error``). A failure or a timeout fails that run only; the
study goes on.

Ctrl-C (SIGINT) or SIGTERM does not stop the loop mid-step: the handler counts it, and the loop
then forwards SIGINT to each running child's process group, waits up to ``grace_s`` (a second
Ctrl-C kills at once), SIGKILLs what is left, and puts those runs back to ``pending`` with the
error ``interrupted`` (a child that finished in time keeps its result).
"""

import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Final, Literal

from llem_harness.indexing import StoreIndex
from llem_harness.study.display import RunLabel, StudyDisplay
from llem_harness.study.gaps import NeverSkip, SkipInput, Thermometer, gap_s
from llem_harness.study.launcher import ChildProcess, Launcher, failure_reason, reported_result
from llem_harness.study.layout import StudyLayout
from llem_harness.study.records import RunRecords
from llem_harness.study.results import find_result
from llem_harness.study.spec import ChildSpec
from llem_schema import StudyConfig, StudyManifest, StudyPlan, new_experiment_id

__all__ = ["INTERRUPTED", "StudyRunner", "stops_counted"]

INTERRUPTED: Final = "interrupted"
"""The error of a run put back to pending because the study was interrupted."""

_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_COOLDOWN_POLL_S: Final = 1.0
"""How often the GPUs' temperature is read while a lane cools down, s."""


@dataclass
class _Active:
    run_index: int
    experiment_id: str
    label: RunLabel
    child: ChildProcess
    timed_out: bool = False


@dataclass
class _Slot:
    """One device (or the one sequential lane): at most one run at a time."""

    device: str | None
    active: _Active | None = None
    last_run: tuple[int, int] | None = None
    """(point, cycle) of the slot's last run in this session."""
    settle_until: float = 0.0
    cool_until: float = 0.0
    """With a cooldown: the latest the next run waits for the GPUs to cool."""
    checked_at: float = -math.inf
    hot_c: float | None = None
    """The last temperature read while cooling, and when."""


@dataclass
class StudyRunner(RunRecords):
    """Runs the remaining entries of ``manifest`` (see the module docstring).

    ``devices``: one lane per entry; ``(None,)`` runs one experiment at a time with the
    inherited CUDA_VISIBLE_DEVICES, ``("0", "1")`` one per GPU, each pinned to it.
    """

    layout: StudyLayout
    study: StudyConfig
    plan: StudyPlan
    manifest: StudyManifest
    index: StoreIndex
    display: StudyDisplay
    launcher: Launcher = field(default_factory=Launcher)
    skip: SkipInput = field(default_factory=NeverSkip)
    thermometer: Thermometer | None = None
    """Reads the GPUs for the cooldown (``study.gap``); None: no cooldown."""
    devices: Sequence[str | None] = (None,)
    verbose: bool = False
    grace_s: float = 10.0
    poll_s: float = 0.1
    _interrupts: int = field(default=0, init=False)

    @property
    def interrupted(self) -> bool:
        return self._interrupts > 0

    def interrupt(self) -> None:
        """What Ctrl-C does: stop after the running runs are wound down."""
        self._interrupts += 1

    def run(self) -> StudyManifest:
        """Run every remaining entry; return the final manifest (status interrupted,
        completed, or failed when no run completed)."""
        queue = deque(entry.run_index for entry in self.manifest.remaining())
        slots = [_Slot(device) for device in self.devices]
        counts = self.manifest.counts()
        self.display.begin(len(self.plan.runs), counts["completed"])
        try:
            with stops_counted(self.interrupt):
                self._loop(queue, slots)
                if self.interrupted:
                    self._wind_down(slots)
        except BaseException:
            for slot in slots:  # no child outlives a failing study process
                if slot.active is not None:
                    slot.active.child.kill()
                    slot.active.child.close()
            raise
        finally:
            self.display.end()
        # stopped with runs still queued (failed ones being retried keep their old status
        # until they start): the study is interrupted, whatever the entries say
        status: Literal["interrupted", "completed", "failed"] = (
            "interrupted" if self.interrupted and queue else self._final_status()
        )
        self._save(self.manifest.with_status(status))
        return self.manifest

    # -- the loop -------------------------------------------------------------------------

    def _loop(self, queue: deque[int], slots: list[_Slot]) -> None:
        while (queue or any(slot.active for slot in slots)) and not self.interrupted:
            now = time.monotonic()
            for slot in slots:
                if slot.active is not None:
                    self._check(slot, queue, now)
            settling = [
                s
                for s in slots
                if s.active is None and queue and (s.settle_until > now or self._cooling(s, now))
            ]
            if settling and self.skip.skippable and self.skip.pressed():
                for slot in settling:
                    slot.settle_until = slot.cool_until = now
                    slot.hot_c = None  # skipped, not given up on
                settling = []
            for slot in slots:
                if queue and slot.active is None and slot not in settling:
                    self._start(slot, queue.popleft())
            remaining = max(
                (
                    max(s.settle_until, s.cool_until if s.hot_c is not None else now) - now
                    for s in settling
                ),
                default=None,
            )
            self.display.settling(remaining, skippable=self.skip.skippable)
            time.sleep(self.poll_s)

    def _check(self, slot: _Slot, queue: deque[int], now: float) -> None:
        active = slot.active
        assert active is not None
        returncode = active.child.poll()
        if returncode is None and active.child.elapsed_s() > self.study.timeout_s:
            active.timed_out = True
            returncode = active.child.kill()
        if returncode is None:
            return
        self._conclude(slot, returncode)
        if queue:
            following = self.manifest.entry(queue[0])
            assert following.cycle is not None
            slot.settle_until = now + gap_s(
                self.study, slot.last_run, (following.point_index, following.cycle)
            )
            if self.study.gap is not None and self.thermometer is not None:
                slot.cool_until = now + self.study.gap.max_s
                slot.checked_at, slot.hot_c = -math.inf, None
            if slot.settle_until > now or slot.cool_until > now:
                self.skip.drain()  # an Enter typed during the run does not skip this gap

    def _cooling(self, slot: _Slot, now: float) -> bool:
        """Whether ``slot`` still waits for its GPUs to cool (after its fixed gap): they read
        above ``gap.until_temperature_c`` and ``gap.max_s`` has not passed since its run."""
        cooldown = self.study.gap
        if cooldown is None or self.thermometer is None or slot.settle_until > now:
            return False  # no cooldown, or its fixed gap first
        if now >= slot.cool_until:
            if slot.hot_c is not None:
                self.display.note(
                    f"cooldown: still {slot.hot_c:.0f} °C after {cooldown.max_s:g} s; going on"
                )
                slot.hot_c = None
            return False
        if now - slot.checked_at < _COOLDOWN_POLL_S:
            return slot.hot_c is not None
        slot.checked_at = now
        reading = self.thermometer.hottest_c(slot.device)
        if reading is None or reading <= cooldown.until_temperature_c:
            slot.hot_c = None
            slot.cool_until = now
            return False
        if slot.hot_c is None:
            self.display.note(
                f"cooldown: GPUs at {reading:.0f} °C, waiting for "
                f"{cooldown.until_temperature_c:g} °C (at most {slot.cool_until - now:.0f} s)"
            )
        slot.hot_c = reading
        return True

    def _start(self, slot: _Slot, run_index: int) -> None:
        entry = self.manifest.entry(run_index)
        assert entry.cycle is not None
        point = self.plan.point(entry.point_index)
        started_at = datetime.now(UTC)
        experiment_id = new_experiment_id(point.config.model, point.config.backend, started_at)
        spec = ChildSpec(
            config=point.config.model_copy(update={"output_dir": str(self.layout.root.absolute())}),
            experiment_id=experiment_id,
            study_id=self.manifest.study_id,
            run_index=run_index,
            store_path=None if self.index.path is None else str(self.index.path.absolute()),
            parent_pid=os.getpid(),
            device=slot.device,
            verbose=self.verbose,
        )
        spec_file = self.layout.spec_file(run_index)
        spec.save(spec_file)
        self._save(
            self.manifest.with_entry(
                run_index,
                status="running",
                started_at=started_at,
                finished_at=None,
                error=None,
                experiment_id=experiment_id,
                result_path=None,
            )
        )
        label = RunLabel(
            run_index=run_index,
            total=len(self.plan.runs),
            point_index=entry.point_index,
            overrides=entry.overrides,
            cycle=entry.cycle,
            device=slot.device,
        )
        pinned = "" if slot.device is None else f", CUDA_VISIBLE_DEVICES={slot.device}"
        header = (
            f"--- {started_at.isoformat(timespec='seconds')} run {run_index} of study "
            f"{self.manifest.study_id}: experiment {experiment_id}{pinned} ---"
        )
        slot.last_run = (entry.point_index, entry.cycle)
        self.display.started(label)
        try:
            child = self.launcher.start(
                spec_file, self.layout.log_file(run_index), header=header, device=slot.device
            )
        except OSError as exc:
            self._failed(label, experiment_id, f"cannot start its process: {exc}")
            return
        slot.active = _Active(run_index, experiment_id, label, child)

    def _conclude(self, slot: _Slot, returncode: int) -> None:
        """Record how the run in ``slot`` ended (its child has exited).

        A saved result with the run's experiment id makes it completed, however the process
        ended (a child interrupted or timed out after saving still measured the run).
        """
        active = slot.active
        assert active is not None
        slot.active = None
        output = active.child.output()
        active.child.close()
        directory = find_result(self.layout, active.experiment_id, hint=reported_result(output))
        if directory is not None:
            self._completed(
                active.label,
                active.experiment_id,
                directory,
                f"completed in {active.child.elapsed_s():.1f} s",
            )
            return
        if returncode == 0:
            reason = "its process ended without error but saved no result"
        elif active.timed_out:
            reason = f"timed out after {self.study.timeout_s:g} s"
        elif self.interrupted:
            self.index.mark_failed(active.experiment_id, INTERRUPTED)
            self._save(
                self.manifest.with_entry(
                    active.run_index, status="pending", finished_at=None, error=INTERRUPTED
                )
            )
            self.display.finished(active.label, INTERRUPTED, counted=False)
            return
        else:
            reason = failure_reason(output, returncode)
        self._failed(active.label, active.experiment_id, reason)

    # -- interruption ---------------------------------------------------------------------

    def _wind_down(self, slots: list[_Slot]) -> None:
        running = [slot for slot in slots if slot.active is not None]
        if not running:
            return
        self.display.note(
            f"interrupted: stopping {len(running)} running run(s) (up to {self.grace_s:g} s; "
            "Ctrl-C again to kill now)"
        )
        for slot in running:
            assert slot.active is not None
            slot.active.child.signal_group(signal.SIGINT)
        asked = self._interrupts
        deadline = time.monotonic() + self.grace_s
        while (
            any(slot.active is not None and slot.active.child.poll() is None for slot in running)
            and time.monotonic() < deadline
            and self._interrupts == asked
        ):
            time.sleep(self.poll_s)
        for slot in running:
            assert slot.active is not None
            returncode = slot.active.child.poll()
            if returncode is None:
                returncode = slot.active.child.kill()
            self._conclude(slot, returncode)

    # -- bookkeeping ----------------------------------------------------------------------

    def _final_status(self) -> Literal["interrupted", "completed", "failed"]:
        counts = self.manifest.counts()
        if counts["pending"] or counts["running"]:
            return "interrupted"
        return "completed" if counts["completed"] or not counts["failed"] else "failed"


@contextmanager
def stops_counted(on_stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``on_stop`` instead of stopping the process
    (main thread only; a signal ignored when the study started stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        on_stop()

    previous = {}
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

"""The power sampler: a thread that reads every GPU at a fixed rate, and the arithmetic on
what it read (trapezoid energy, gaps, achieved rate).

The per-sample work (:meth:`PowerSampler.sample_once`) and the arithmetic are plain calls
with an injectable clock, so they are tested without threads or sleeping; the thread only
decides *when* to call ``sample_once``.
"""

import itertools
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llem_energy.errors import EnergyError
from llem_schema import PowerSample

__all__ = [
    "PowerSampler",
    "SampleGap",
    "SampledDevice",
    "SamplerResult",
    "achieved_rate_hz",
    "integrate_power_j",
    "sample_gaps",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class SampledDevice(Protocol):
    """What the sampler needs from a GPU (``llem_energy.nvml.NvmlDevice`` provides it)."""

    @property
    def index(self) -> int: ...

    @property
    def uuid(self) -> str: ...

    @property
    def has_energy_counter(self) -> bool: ...

    def read_sample(self, timestamp_s: float) -> PowerSample: ...

    def energy_mj(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SampleGap:
    """A stretch without samples from one GPU, longer than allowed."""

    gpu_index: int
    start_s: float
    """Timestamp of the sample before the gap, s from the window start."""
    gap_s: float
    """Time to the next sample, s."""


@dataclass(frozen=True, slots=True)
class SamplerResult:
    """What one sampling run produced."""

    samples: list[PowerSample]
    """Every sample, in the order taken (time order)."""
    read_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per GPU UUID: failed reads and the first failure's message."""
    counter_update_period_s: dict[str, float] = field(default_factory=dict)
    """Per GPU UUID: median time between changes of its energy counter, s (where seen)."""
    counter_changes: dict[str, int] = field(default_factory=dict)
    """Per GPU UUID with a counter: how often its value changed while sampling."""


def integrate_power_j(samples: Iterable[PowerSample]) -> dict[int, float]:
    """Trapezoidal integral of power over time per GPU index, J.

    Samples without a power reading are skipped; a GPU with fewer than two readings
    integrates to 0 J. Timestamps must not go backwards within one GPU.
    """
    points: dict[int, list[tuple[float, float]]] = {}
    for sample in samples:
        if sample.gpu_power_w is not None:
            points.setdefault(sample.gpu_index, []).append((sample.timestamp_s, sample.gpu_power_w))
    energy: dict[int, float] = {}
    for index, series in points.items():
        energy[index] = math.fsum(
            (t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in itertools.pairwise(series)
        )
    return energy


def sample_gaps(
    samples: Iterable[PowerSample], period_s: float, *, factor: float = 2.0
) -> list[SampleGap]:
    """Gaps between successive samples of one GPU longer than ``factor`` x ``period_s``."""
    last: dict[int, float] = {}
    gaps: list[SampleGap] = []
    for sample in samples:
        previous = last.get(sample.gpu_index)
        if previous is not None and sample.timestamp_s - previous > factor * period_s:
            gaps.append(SampleGap(sample.gpu_index, previous, sample.timestamp_s - previous))
        last[sample.gpu_index] = sample.timestamp_s
    return gaps


def achieved_rate_hz(samples: Sequence[PowerSample]) -> float | None:
    """Samples per second per GPU over the sampled span; None with fewer than two samples."""
    per_gpu: dict[int, list[float]] = {}
    for sample in samples:
        per_gpu.setdefault(sample.gpu_index, []).append(sample.timestamp_s)
    rates = [
        (len(times) - 1) / (times[-1] - times[0])
        for times in per_gpu.values()
        if len(times) > 1 and times[-1] > times[0]
    ]
    return statistics.fmean(rates) if rates else None


class PowerSampler:
    """Reads every GPU ``rate_hz`` times a second on a background thread.

    :meth:`start` takes the first sample at once and :meth:`stop` the last, so the samples
    span the whole window; ``on_tick`` callables (RAPL polling) run with every sample.
    Timestamps are ``clock()`` seconds minus the ``origin_s`` given to :meth:`start`.
    """

    def __init__(
        self,
        devices: Sequence[SampledDevice],
        *,
        rate_hz: float,
        clock: Clock = time.perf_counter,
        on_tick: Sequence[Callable[[], None]] = (),
    ) -> None:
        if not rate_hz > 0.0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.devices = list(devices)
        self.period_s = 1.0 / rate_hz
        self._clock = clock
        self._on_tick = list(on_tick)
        self._origin_s = 0.0
        self._samples: list[PowerSample] = []
        self._errors: dict[str, tuple[int, str]] = {}
        self._last_counter: dict[str, int] = {}
        self._counter_change_s: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick_error: BaseException | None = None

    def sample_once(self) -> None:
        """Take one sample of every GPU now (and run the ``on_tick`` callables)."""
        timestamp_s = self._clock() - self._origin_s
        for device in self.devices:
            try:
                self._samples.append(device.read_sample(timestamp_s))
                if device.has_energy_counter:
                    self._note_counter(device.uuid, device.energy_mj(), timestamp_s)
            except EnergyError as exc:
                count, first = self._errors.get(device.uuid, (0, str(exc)))
                self._errors[device.uuid] = (count + 1, first)
                logger.debug("sample of GPU %d failed: %s", device.index, exc)
        for tick in self._on_tick:
            tick()

    def _note_counter(self, uuid: str, value_mj: int, timestamp_s: float) -> None:
        previous = self._last_counter.get(uuid)
        self._last_counter[uuid] = value_mj
        if previous is not None and value_mj != previous:
            self._counter_change_s.setdefault(uuid, []).append(timestamp_s)

    def start(self, origin_s: float) -> None:
        """Start sampling; timestamps count from ``origin_s`` on the sampler's clock."""
        if self._thread is not None:
            raise RuntimeError("this sampler is already running")
        self._origin_s = origin_s
        self._stop.clear()
        self.sample_once()
        self._thread = threading.Thread(target=self._run, name="llem-power-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_s = self._clock() + self.period_s
        try:
            while not self._stop.wait(max(0.0, next_s - self._clock())):
                self.sample_once()
                next_s += self.period_s
                now_s = self._clock()
                if next_s < now_s:  # fell behind: skip the missed ticks rather than burst
                    next_s = now_s + self.period_s
        except BaseException as exc:  # pragma: no cover - surfaced by stop()
            self._tick_error = exc

    def stop(self) -> SamplerResult:
        """Stop the thread, take the last sample, and return everything sampled."""
        if self._thread is None:
            raise RuntimeError("this sampler was not started")
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._tick_error is not None:
            raise self._tick_error
        self.sample_once()
        periods = {
            uuid: statistics.median(b - a for a, b in itertools.pairwise(times))
            for uuid, times in self._counter_change_s.items()
            if len(times) > 1
        }
        changes = {
            device.uuid: len(self._counter_change_s.get(device.uuid, []))
            for device in self.devices
            if device.has_energy_counter
        }
        return SamplerResult(
            samples=list(self._samples),
            read_errors=dict(self._errors),
            counter_update_period_s=periods,
            counter_changes=changes,
        )

"""The power sampler: a thread that reads every GPU at a fixed rate, and the arithmetic on
what it read (trapezoid energy, gaps, achieved rate).

The per-sample work (:meth:`PowerSampler.sample_once`) and the arithmetic are plain calls
with an injectable clock, so they are tested without threads or sleeping; the thread only
decides *when* to call ``sample_once``.

Samples are kept as columns (:class:`SampleColumns`, one ``array.array`` per timeseries
column), not as one ``PowerSample`` object per reading: ``llem_persistence.write_timeseries``
writes the columns as they are, with no conversion per row, and a sample takes 57 bytes
instead of about 216. :attr:`SamplerResult.samples` builds the row objects on first use.
"""

import itertools
import logging
import math
import statistics
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Protocol

from llem_energy.errors import EnergyError
from llem_schema import TIMESERIES_COLUMNS, PowerSample

__all__ = [
    "PowerSampler",
    "SampleColumns",
    "SampleGap",
    "SampledDevice",
    "SamplerResult",
    "achieved_rate_hz",
    "integrate_power_j",
    "sample_gaps",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

_TYPECODES: Final = {
    "timestamp_s": "d",
    "gpu_index": "i",
    "gpu_power_w": "d",
    "gpu_temperature_c": "d",
    "gpu_memory_used_mb": "d",
    "gpu_utilization_pct": "d",
    "clock_event_reasons": "Q",
}
"""``array.array`` type code per column: float64, int32 (``i``) and uint64 (``Q``)."""
_OPTIONAL: Final = TIMESERIES_COLUMNS[2:]
"""The columns that may be None (every one but the timestamp and the index)."""
assert tuple(_TYPECODES) == TIMESERIES_COLUMNS, "type codes and PowerSample disagree"
_MAX_WAIT_S: Final = threading.TIMEOUT_MAX
"""The longest timeout ``Lock.acquire`` accepts, s (a very slow rate's period is cut to it)."""


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


def _empty_values() -> dict[str, "array[Any]"]:
    return {name: array(code) for name, code in _TYPECODES.items()}


def _empty_present() -> dict[str, "array[int]"]:
    return {name: array("B") for name in _OPTIONAL}


@dataclass(eq=True, repr=False, slots=True)
class SampleColumns:
    """Power samples as columns, one row per sample, in the order taken.

    ``values[name]`` holds one value per row for every name of ``TIMESERIES_COLUMNS``: an
    ``array.array`` of float64 (``"d"``), of int32 for ``gpu_index`` (``"i"``) and of uint64
    for ``clock_event_reasons`` (``"Q"``). The columns that may be None have
    ``present[name]``, a byte per row: 1 where the row has a value, 0 where it is None (its
    slot in ``values`` then holds 0). ``llem_persistence.write_timeseries`` writes this as
    it is.
    """

    values: dict[str, "array[Any]"] = field(default_factory=_empty_values)
    """Per column, its values (0 where ``present`` says None)."""
    present: dict[str, "array[int]"] = field(default_factory=_empty_present)
    """Per column that may be None: 1 where the row has a value, else 0."""

    def __len__(self) -> int:
        return len(self.values["timestamp_s"])

    def __repr__(self) -> str:
        return f"SampleColumns({len(self)} rows)"

    def append(self, sample: PowerSample) -> None:
        """Add ``sample`` as the last row: whole, or (on a value its column cannot hold, such
        as a negative reasons mask) not at all, raising ``TypeError`` or ``OverflowError``."""
        values, present = self.values, self.present
        try:
            values["timestamp_s"].append(sample.timestamp_s)
            values["gpu_index"].append(sample.gpu_index)
            for name in _OPTIONAL:
                value = getattr(sample, name)
                present[name].append(value is not None)
                values[name].append(0 if value is None else value)
        except (TypeError, OverflowError):
            columns = [*values.values(), *present.values()]
            rows = min(len(column) for column in columns)  # the row began at the shortest
            for column in columns:
                del column[rows:]
            raise

    def rows(self) -> list[PowerSample]:
        """Every row as a ``PowerSample`` (None where a value is absent)."""
        columns = [self._with_none(name) for name in TIMESERIES_COLUMNS]
        return [PowerSample(*row) for row in zip(*columns, strict=True)]

    def _with_none(self, name: str) -> Sequence[Any]:
        values, present = self.values[name], self.present.get(name)
        if present is None or 0 not in present:
            return values
        return [value if has else None for value, has in zip(values, present, strict=True)]

    def copy(self) -> "SampleColumns":
        """A copy that later appends to either leave the other alone."""
        return SampleColumns(
            values={name: column[:] for name, column in self.values.items()},
            present={name: column[:] for name, column in self.present.items()},
        )


@dataclass(frozen=True, slots=True)
class SampleGap:
    """A stretch without samples from one GPU, longer than allowed."""

    gpu_index: int
    start_s: float
    """Timestamp of the sample before the gap, s from the window start."""
    gap_s: float
    """Time to the next sample, s."""


@dataclass(frozen=True)
class SamplerResult:
    """What one sampling run produced."""

    columns: SampleColumns
    """Every sample, in the order taken (time order), as columns."""
    read_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per GPU UUID: failed reads and the first failure's message."""
    counter_update_period_s: dict[str, float] = field(default_factory=dict)
    """Per GPU UUID: median time between changes of its energy counter, s (where seen)."""
    counter_changes: dict[str, int] = field(default_factory=dict)
    """Per GPU UUID with a counter: how often its value changed while sampling."""

    @cached_property
    def samples(self) -> list[PowerSample]:
        """Every sample, in the order taken (time order), as rows: built from
        :attr:`columns` on first use."""
        return self.columns.rows()


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
        self._columns = SampleColumns()
        self._errors: dict[str, tuple[int, str]] = {}
        self._last_counter: dict[str, int] = {}
        self._counter_change_s: dict[str, list[float]] = {}
        self._sampling = threading.Lock()
        """Held by one ``sample_once`` at a time: a caller's and the thread's never mix
        their rows' columns."""
        self._running = threading.Lock()
        """Held by the caller of :meth:`start` while the thread runs; :meth:`stop` releases
        it, which wakes the thread at once."""
        self._thread: threading.Thread | None = None
        self._tick_error: BaseException | None = None

    def sample_once(self) -> None:
        """Take one sample of every GPU now (and run the ``on_tick`` callables)."""
        with self._sampling:
            timestamp_s = self._clock() - self._origin_s
            for device in self.devices:
                try:
                    self._columns.append(device.read_sample(timestamp_s))
                    if device.has_energy_counter:
                        self._note_counter(device.uuid, device.energy_mj(), timestamp_s)
                except (EnergyError, TypeError, OverflowError) as exc:  # also a reading
                    # the columns cannot hold (a negative mask): that GPU's sample is lost
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
        self._running = threading.Lock()
        self._running.acquire()
        self.sample_once()
        self._thread = threading.Thread(target=self._run, name="llem-power-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # One blocking call per tick, in C: acquiring the held lock with a timeout is the
        # sleep, and stop() releasing it is the wake-up. (Event.wait runs Condition.wait in
        # Python with a fresh lock each call: about 10 us more a tick, a quarter of the
        # thread's time outside sample_once on the 2-core VM of bench/README.md.)
        running, clock, period_s = self._running, self._clock, self.period_s
        next_s = clock() + period_s
        try:
            while not running.acquire(timeout=min(max(0.0, next_s - clock()), _MAX_WAIT_S)):
                self.sample_once()
                next_s += period_s
                now_s = clock()
                if next_s < now_s:  # fell behind: skip the missed ticks rather than burst
                    next_s = now_s + period_s
        except BaseException as exc:  # pragma: no cover - surfaced by stop()
            self._tick_error = exc

    def stop(self) -> SamplerResult:
        """Stop the thread, take the last sample, and return everything sampled."""
        if self._thread is None:
            raise RuntimeError("this sampler was not started")
        self._running.release()
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
            columns=self._columns.copy(),
            read_errors=dict(self._errors),
            counter_update_period_s=periods,
            counter_changes=changes,
        )

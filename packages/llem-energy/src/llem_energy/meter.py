"""The measurement window: open with :meth:`EnergyMeter.start`, close with
:meth:`EnergyWindow.stop`.

>>> meter = EnergyMeter.create(config.energy, gpus=["GPU-5d6f...", "GPU-8a1c..."])
>>> baselines = meter.measure_baseline(config.baseline)   # optional, the devices idle
>>> window = meter.start()          # the harness synchronises the device right before
>>> ...                             # inference
>>> reading = window.stop()         # ... and right after, then stop()
>>> reading.energy, reading.samples, reading.throttle, reading.warnings
>>> meter.close()
"""

import dataclasses
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from llem_energy.baseline import BaselineCache
from llem_energy.checks import (
    GAP_FACTOR,
    MeasurementFacts,
    measurement_warnings,
    thermal_drift_c,
    warning,
)
from llem_energy.environment import DEFAULT_PACKAGES, collect_environment, in_container
from llem_energy.errors import (
    EnergyError,
    EnergySourceUnavailableError,
    RaplPermissionError,
    RaplUnavailableError,
)
from llem_energy.nvml import NvmlDevice, NvmlSession, resolve_gpu_indices
from llem_energy.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter, RaplReader
from llem_energy.sampler import PowerSampler, SampleColumns, integrate_power_j, sample_gaps
from llem_energy.throttle import summarise_throttle
from llem_schema import (
    BaselineConfig,
    BaselineMeasurement,
    DeviceEnergy,
    DeviceInfo,
    EnergyConfig,
    EnvironmentSnapshot,
    MeasurementWarning,
    PowerSample,
    ProcessEnvironment,
    ThermalThrottleInfo,
)
from llem_schema.measurement import DeviceState, EnergyMethod
from llem_schema.metrics import adjusted_energy_j

__all__ = [
    "IDLE_STATE",
    "EnergyMeter",
    "EnergyReading",
    "EnergyWindow",
    "idle_problems",
    "process_tree",
]

logger = logging.getLogger(__name__)

_MIN_TICKS_FOR_RESOLUTION = 3
"""Below this many samples the sampler cannot tell how often the energy counter updates."""


@dataclass(frozen=True, slots=True)
class EnergyReading:
    """What one measurement window measured."""

    energy: list[DeviceEnergy]
    """Energy per GPU (by UUID) and per RAPL domain; empty without a source."""
    samples: list[PowerSample]
    """Timeseries rows, seconds from the window's start."""
    throttle: ThermalThrottleInfo | None
    """Throttling and temperatures; None without GPU samples."""
    duration_s: float
    """Window length on the monotonic clock, s."""
    start_time: datetime
    """Window start, wall clock (UTC)."""
    end_time: datetime
    """Window end, wall clock (UTC)."""
    warnings: list[MeasurementWarning]
    """Measurement warnings judged from the window alone (see :meth:`warnings_with`)."""
    facts: MeasurementFacts
    """What the warnings were judged from."""
    environment: ProcessEnvironment | None = None
    """The metered GPUs at window start and end, and the driver; None without NVML."""
    timeseries: SampleColumns = dataclasses.field(default_factory=SampleColumns)
    """The same samples as columns, as ``llem_persistence.write_timeseries`` takes them."""

    @property
    def sample_count(self) -> int:
        """Timeseries rows taken (one per GPU per tick)."""
        return len(self.samples)

    @property
    def total_energy_j(self) -> float | None:
        """Energy summed over every device, J; None without a source."""
        return math.fsum(e.energy_j for e in self.energy) if self.energy else None

    @property
    def baseline_power_w(self) -> float | None:
        """Idle power summed over every device, W; None unless every device has a baseline."""
        powers = [e.baseline.power_w if e.baseline else None for e in self.energy]
        if not powers or any(p is None for p in powers):
            return None
        return math.fsum(p for p in powers if p is not None)

    @property
    def adjusted_energy_j(self) -> float | None:
        """max(0, total - baseline power x duration), J; None without a full baseline."""
        total, baseline = self.total_energy_j, self.baseline_power_w
        if total is None or baseline is None:
            return None
        return adjusted_energy_j(total, baseline, self.duration_s)

    def warnings_with(self, *, prompt_count: int | None) -> list[MeasurementWarning]:
        """The warnings again, judging also what only the harness knows."""
        return measurement_warnings(dataclasses.replace(self.facts, prompt_count=prompt_count))


class EnergyWindow:
    """An open measurement window; :meth:`stop` closes it once."""

    def __init__(self, meter: "EnergyMeter") -> None:
        self._meter = meter
        self._clock = meter.clock
        self._rapl = RaplCounter(meter.rapl) if meter.rapl is not None else None
        self._sampler = PowerSampler(
            meter.gpus,
            rate_hz=meter.config.sample_rate_hz,
            clock=self._clock,
            on_tick=[self._rapl.poll] if self._rapl is not None else [],
        )
        self._extra: list[MeasurementWarning] = [*meter.setup_warnings, *meter.baseline_warnings]
        self._start_mj: dict[str, int] = {}
        self._stopped = False
        self._at_start = meter.device_states()
        self._events_start = meter.clock_events()
        self.start_time = datetime.now(UTC)
        self._origin_s = self._clock()
        for gpu in meter.gpus:
            if gpu.has_energy_counter:
                value = self._read_counter(gpu, "start")
                if value is not None:
                    self._start_mj[gpu.uuid] = value
        if self._rapl is not None:
            self._rapl.start()
        self._sampler.start(self._origin_s)

    @property
    def origin_s(self) -> float:
        """When the window opened, on the meter's clock (``time.perf_counter`` unless a test
        gave another): timeseries timestamps and request start times count from it."""
        return self._origin_s

    def _read_counter(self, gpu: NvmlDevice, when: str) -> int | None:
        try:
            return gpu.energy_mj()
        except EnergyError as exc:
            self._extra.append(
                warning(
                    "counter_unreadable",
                    f"GPU {gpu.uuid}: energy counter unreadable at window {when} ({exc}); "
                    "integrated power is used instead",
                    device=gpu.uuid,
                )
            )
            return None

    def stop(self) -> EnergyReading:
        """Close the window: read the counters, stop the sampler, and judge the result."""
        if self._stopped:
            raise EnergyError("this measurement window is already closed; call meter.start() again")
        self._stopped = True
        meter = self._meter
        end_mj: dict[str, int] = {}
        try:
            for gpu in meter.gpus:
                if gpu.uuid in self._start_mj:
                    value = self._read_counter(gpu, "end")
                    if value is not None:
                        end_mj[gpu.uuid] = value
            end_s = self._clock()
            end_time = datetime.now(UTC)
        finally:
            try:
                result = self._sampler.stop()
            finally:
                meter.window_closed()  # a new window may open, whatever the sampler did
        at_end = meter.device_states()
        events_end = meter.clock_events()
        duration_s = max(0.0, end_s - self._origin_s)
        integrated = integrate_power_j(result.samples)
        gaps = sample_gaps(result.samples, self._sampler.period_s, factor=GAP_FACTOR)
        rates = _rates_hz(result.samples, duration_s)
        energy: list[DeviceEnergy] = []
        for gpu in meter.gpus:
            counter_j = None
            if gpu.uuid in end_mj:
                delta_mj = end_mj[gpu.uuid] - self._start_mj[gpu.uuid]
                if delta_mj >= 0:
                    counter_j = delta_mj / 1000.0
                else:
                    self._extra.append(
                        warning(
                            "counter_backwards",
                            f"GPU {gpu.uuid}: energy counter went backwards ({delta_mj} mJ; a "
                            "driver reload or GPU reset?): integrated power is used instead",
                            device=gpu.uuid,
                            delta_mj=delta_mj,
                        )
                    )
            integrated_j = integrated.get(gpu.index)
            has_power = sum(
                1 for s in result.samples if s.gpu_index == gpu.index and s.gpu_power_w is not None
            )
            if has_power < 2:
                integrated_j = None
            if counter_j is None and integrated_j is None:
                self._extra.append(
                    warning(
                        "device_unmeasured",
                        f"GPU {gpu.uuid}: no energy figure (no counter and fewer than two "
                        "power readings); it is left out of the totals",
                        device=gpu.uuid,
                    )
                )
                continue
            method: EnergyMethod = "counter" if counter_j is not None else "integrated"
            energy.append(
                DeviceEnergy(
                    device_uuid=gpu.uuid,
                    domain="gpu",
                    energy_j=counter_j if counter_j is not None else integrated_j or 0.0,
                    method=method,
                    counter_energy_j=counter_j,
                    integrated_energy_j=integrated_j,
                    baseline=meter.baselines.get(gpu.uuid),
                    power_reading=gpu.power_reading,
                    power_scope=gpu.power_scope,
                    sample_rate_hz=rates.get(gpu.index),
                    sample_gaps=sum(1 for g in gaps if g.gpu_index == gpu.index),
                )
            )
        if self._rapl is not None:
            for zone in self._rapl.zones:
                zone_j = self._rapl.energy_j()[zone.device_id]
                energy.append(
                    DeviceEnergy(
                        device_uuid=zone.device_id,
                        domain=zone.domain,
                        energy_j=zone_j,
                        method="counter",
                        counter_energy_j=zone_j,
                        baseline=meter.baselines.get(zone.device_id),
                    )
                )
        throttle = summarise_throttle(result.samples) if result.samples else None
        if meter.gpus and len(self._events_start) == len(events_end) == len(meter.gpus):
            throttle = _counted(throttle, self._events_start, events_end)
        ticks = {
            gpu.uuid: sum(1 for x in result.samples if x.gpu_index == gpu.index)
            for gpu in meter.gpus
        }
        foreign = _foreign(self._at_start, at_end)
        facts = MeasurementFacts(
            duration_s=duration_s,
            energy=energy,
            energy_unavailable_reason=meter.unavailable_reason,
            energy_unavailable_details=meter.unavailable_details,
            sample_period_s=self._sampler.period_s,
            gaps=gaps,
            throttle=throttle,
            thermal_drift_c=thermal_drift_c(result.samples),
            persistence_mode={gpu.uuid: meter.persistence[gpu.uuid] for gpu in meter.gpus},
            ecc_enabled={gpu.uuid: meter.ecc[gpu.uuid] for gpu in meter.gpus},
            mig_enabled={gpu.uuid: meter.mig[gpu.uuid] for gpu in meter.gpus},
            power_reading={gpu.uuid: gpu.power_reading for gpu in meter.gpus if gpu.power_reading},
            module_power=[gpu.uuid for gpu in meter.gpus if gpu.power_scope == "module"],
            foreign_pids=foreign,
            in_container=bool(foreign) and in_container(),
            power_limit_w={
                state.uuid: state.power_limit_w
                for state in self._at_start
                if state.power_limit_w is not None
            },
            peak_power_w=_peaks_w(result.samples, {gpu.index: gpu.uuid for gpu in meter.gpus}),
            simulated=meter.simulated,
            mismatch_tolerance=meter.config.mismatch_tolerance,
            counter_update_period_s=result.counter_update_period_s,
            counter_changes={
                uuid: changes
                for uuid, changes in result.counter_changes.items()
                if ticks.get(uuid, 0) >= _MIN_TICKS_FOR_RESOLUTION
            },
            read_errors=result.read_errors,
            extra=tuple(self._extra),
        )
        return EnergyReading(
            energy=energy,
            samples=result.samples,
            throttle=throttle,
            duration_s=duration_s,
            start_time=self.start_time,
            end_time=end_time,
            warnings=measurement_warnings(facts),
            facts=facts,
            environment=meter.process_environment(self._at_start, at_end),
            timeseries=result.columns,
        )


_PEAK_SPAN_S: Final = 1.0
"""Power is compared with the power limit as a mean over this long, s."""
IDLE_STATE: Final = "device synchronised and idle"
"""The state :meth:`EnergyMeter.measure_baseline` assumes unless told another."""
IDLE_MAX_UTILIZATION_PCT: Final = 5.0
"""A device busier than this at any sample is not idle."""
IDLE_MAX_POWER_CV: Final = 0.15
"""Power varying more than this (standard deviation over mean) is not steady."""
IDLE_MAX_COOLING_C: Final = 3.0
"""A device cooling by more than this while measured was still warm from earlier work."""
IDLE_MAX_WARMTH_C: Final = 15.0
"""A GPU this much above the temperature of its last idle figure is still warm from
earlier work: the run starts from another thermal state (``start_temperature``)."""


def idle_problems(reading: "EnergyReading", gpus: Sequence[NvmlDevice]) -> dict[str, list[str]]:
    """Per GPU UUID: why ``reading`` does not look like an idle device, empty when it does:
    utilisation above IDLE_MAX_UTILIZATION_PCT, compute processes not of this run, power
    varying more than IDLE_MAX_POWER_CV, or cooling by more than IDLE_MAX_COOLING_C."""
    by_index: dict[int, list[PowerSample]] = {}
    for sample in reading.samples:
        by_index.setdefault(sample.gpu_index, []).append(sample)
    foreign = reading.facts.foreign_pids
    problems: dict[str, list[str]] = {}
    for gpu in gpus:
        found: list[str] = []
        series = by_index.get(gpu.index, [])
        busy = [s.gpu_utilization_pct for s in series if s.gpu_utilization_pct is not None]
        if busy and max(busy) > IDLE_MAX_UTILIZATION_PCT:
            found.append(f"utilisation up to {max(busy):.0f} %")
        if foreign.get(gpu.uuid):
            pids = ", ".join(map(str, foreign[gpu.uuid]))
            found.append(f"compute processes not of this run (PIDs {pids})")
        powers = [s.gpu_power_w for s in series if s.gpu_power_w is not None]
        if len(powers) >= 3 and statistics.fmean(powers) > 0:
            cv = statistics.pstdev(powers) / statistics.fmean(powers)
            if cv > IDLE_MAX_POWER_CV:
                found.append(f"power unsteady (CV {cv:.2f})")
        temperatures = [s.gpu_temperature_c for s in series if s.gpu_temperature_c is not None]
        if len(temperatures) >= 2 and temperatures[0] - temperatures[-1] > IDLE_MAX_COOLING_C:
            found.append(f"cooling by {temperatures[0] - temperatures[-1]:.1f} °C")
        problems[gpu.uuid] = found
    return problems


def _mean_temperatures(
    samples: Sequence[PowerSample], gpus: Sequence[NvmlDevice]
) -> dict[str, float]:
    uuids = {gpu.index: gpu.uuid for gpu in gpus}
    readings: dict[str, list[float]] = {}
    for sample in samples:
        if sample.gpu_temperature_c is not None and sample.gpu_index in uuids:
            readings.setdefault(uuids[sample.gpu_index], []).append(sample.gpu_temperature_c)
    return {uuid: statistics.fmean(values) for uuid, values in readings.items()}


def _warm_starts(
    temperatures: Mapping[str, float], idle_c: Mapping[str, float]
) -> list[MeasurementWarning]:
    """A ``start_temperature`` warning for each GPU that began its run (its baseline) more
    than IDLE_MAX_WARMTH_C above the temperature of its last idle figure."""
    return [
        warning(
            "start_temperature",
            f"GPU {uuid} started the run at {temperatures[uuid]:.0f} °C, "
            f"{temperatures[uuid] - idle_c[uuid]:.0f} °C above its idle temperature of "
            f"{idle_c[uuid]:.0f} °C (an earlier baseline): it was still warm from earlier work, "
            "so this run started from another thermal state than runs compared with it, and "
            "its idle figure is high; let the GPU cool between runs (a study's gap: "
            "{until_temperature_c, max_s})",
            device=uuid,
            start_c=temperatures[uuid],
            idle_c=idle_c[uuid],
            limit_c=IDLE_MAX_WARMTH_C,
        )
        for uuid in sorted(temperatures)
        if uuid in idle_c and temperatures[uuid] - idle_c[uuid] > IDLE_MAX_WARMTH_C
    ]


def process_tree(root_pid: int, proc: Path = Path("/proc")) -> set[int]:
    """``root_pid`` and every process descended from it (a managed server, a run's
    workers), read from ``/proc``; just ``root_pid`` where there is no ``/proc``."""
    children: dict[int, list[int]] = {}
    try:
        entries = [entry for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return {root_pid}
    for entry in entries:
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state"
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not a process
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = {root_pid}, [root_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _foreign(
    at_start: Sequence[DeviceState], at_end: Sequence[DeviceState]
) -> dict[str, list[int]]:
    """Per GPU UUID: the foreign compute processes seen at window start or end."""
    foreign: dict[str, set[int]] = {}
    for state in (*at_start, *at_end):
        if state.foreign_pids:
            foreign.setdefault(state.uuid, set()).update(state.foreign_pids)
    return {uuid: sorted(pids) for uuid, pids in foreign.items()}


def _counted(
    sampled: ThermalThrottleInfo | None,
    start: Mapping[str, Mapping[str, int]],
    end: Mapping[str, Mapping[str, int]],
) -> ThermalThrottleInfo:
    """The throttling of the window from NVML's cumulative clock-event durations: each
    kind's time is the longest any GPU spent in it, exact where 10 Hz samples miss short
    events. Hardware slowdown (0x8), which NVML does not count, stays as sampled."""
    seconds = {
        kind: max(max(0, end[uuid][kind] - start[uuid][kind]) for uuid in start) / 1e9
        for kind in ("power_cap", "sw_thermal", "hw_thermal", "hw_power_brake")
    }
    hw_slowdown = sampled.hw_slowdown if sampled is not None else False
    sampled_slowdown_s = (sampled.slowdown_s or 0.0) if hw_slowdown and sampled else 0.0
    slowdown_s = max(
        seconds["sw_thermal"], seconds["hw_thermal"], seconds["hw_power_brake"], sampled_slowdown_s
    )
    kinds = {kind: value > 0.0 for kind, value in seconds.items()}
    return ThermalThrottleInfo(
        detected=any(kinds.values()) or hw_slowdown,
        hw_slowdown=hw_slowdown,
        throttled_s=max(slowdown_s, seconds["power_cap"]),
        slowdown_s=slowdown_s,
        power_cap_s=seconds["power_cap"],
        source="counters",
        temperature_start_c=sampled.temperature_start_c if sampled else None,
        temperature_peak_c=sampled.temperature_peak_c if sampled else None,
        **kinds,
    )


def _peaks_w(samples: Sequence[PowerSample], uuids: Mapping[int, str]) -> dict[str, float]:
    """Per GPU UUID: the highest power over any second of the window, W (the mean of the
    readings in it; the whole window's where it is shorter). A power limit holds for power
    averaged so; a single instant reading may spike above it on a healthy board."""
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        if sample.gpu_power_w is not None and sample.gpu_index in uuids:
            series.setdefault(uuids[sample.gpu_index], []).append(
                (sample.timestamp_s, sample.gpu_power_w)
            )
    peaks: dict[str, float] = {}
    for uuid, points in series.items():
        first, total, best = 0, 0.0, None
        for last, (time_s, power_w) in enumerate(points):
            total += power_w
            while time_s - points[first + 1][0] >= _PEAK_SPAN_S if first < last else False:
                total -= points[first][1]
                first += 1
            if time_s - points[first][0] >= _PEAK_SPAN_S:  # a whole second, no less
                mean = total / (last - first + 1)
                best = mean if best is None else max(best, mean)
        if best is None:  # a window under a second: its mean
            best = math.fsum(power_w for _, power_w in points) / len(points)
        peaks[uuid] = best
    return peaks


def _rates_hz(samples: Sequence[PowerSample], duration_s: float) -> dict[int, float]:
    """Per GPU index: samples taken per second of the window (the first at its start and
    the last at its end, so n samples span n - 1 periods)."""
    counts: dict[int, int] = {}
    for sample in samples:
        counts[sample.gpu_index] = counts.get(sample.gpu_index, 0) + 1
    if duration_s <= 0.0:
        return {}
    return {index: (count - 1) / duration_s for index, count in counts.items() if count > 1}


def _open_gpus(
    session: NvmlSession,
    gpus: Literal["all"] | Sequence[int | str] | None,
    environ: Mapping[str, str],
) -> list[NvmlDevice]:
    """The GPUs ``gpus`` names (see :meth:`EnergyMeter.create`), each once, in order."""
    if gpus is None:
        indices = resolve_gpu_indices(session, environ.get("CUDA_VISIBLE_DEVICES"))
        return [session.device(index) for index in indices]
    if gpus == "all":
        return [session.device(index) for index in range(session.device_count())]
    opened: dict[str, NvmlDevice] = {}
    for gpu in gpus:
        device = session.device_by_uuid(gpu) if isinstance(gpu, str) else session.device(gpu)
        opened.setdefault(device.uuid, device)
    return list(opened.values())


class EnergyMeter:
    """The energy sources of one process, opened once; measures any number of windows.

    Build it with :meth:`create`; close it (or use ``with``) to release NVML.
    """

    def __init__(
        self,
        config: EnergyConfig,
        *,
        session: NvmlSession | None,
        gpus: Sequence[NvmlDevice],
        rapl: RaplReader | None,
        unavailable_reason: str | None = None,
        unavailable_details: str | None = None,
        setup_warnings: Sequence[MeasurementWarning] = (),
        clock: Callable[[], float] = time.perf_counter,
        own_pids: Callable[[], Collection[int] | None] | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.gpus = list(gpus)
        self.rapl = rapl
        self.unavailable_reason = unavailable_reason
        """Why no energy is measured although it was asked for, in a few words; None when
        energy is measured, or ``energy.source`` is ``none``."""
        self.unavailable_details = unavailable_details
        """What each source said when it could not be opened."""
        self.setup_warnings = list(setup_warnings)
        self.baseline_warnings: list[MeasurementWarning] = []
        """What the last :meth:`measure_baseline` found (a device not idle, a warm start)."""
        self.clock = clock
        self.baselines: dict[str, BaselineMeasurement] = {}
        self.persistence = {gpu.uuid: gpu.persistence_mode() for gpu in self.gpus}
        self.ecc = {gpu.uuid: gpu.ecc_enabled() for gpu in self.gpus}
        self.mig = {gpu.uuid: gpu.mig_enabled() for gpu in self.gpus}
        self.own_pids = own_pids or (lambda: process_tree(os.getpid()))
        """This run's processes, whose compute contexts on a metered GPU are not foreign."""
        self._window_open = False

    @classmethod
    def create(
        cls,
        config: EnergyConfig | None = None,
        *,
        gpus: Literal["all"] | Sequence[int | str] | None = None,
        rapl_root: Path = DEFAULT_POWERCAP_ROOT,
        nvml: Any = None,
        clock: Callable[[], float] = time.perf_counter,
        environ: Mapping[str, str] | None = None,
        own_pids: Callable[[], Collection[int] | None] | None = None,
        host: bool = True,
    ) -> "EnergyMeter":
        """Open the sources ``config.source`` names.

        ``gpus`` are the GPUs to meter: their UUIDs (``GPU-...``, as the framework that placed
        the model reports them: a UUID names one physical GPU whatever order CUDA and NVML
        number them in), NVML indices, ``"all"`` (every GPU on the host), or an empty list (a
        run on the CPU meters no GPU). By default, the GPUs ``CUDA_VISIBLE_DEVICES`` leaves
        visible (every GPU when unset). ``nvml`` replaces the real ``pynvml`` module (tests
        pass ``llem_energy.testing.FakeNvml``).

        ``auto`` uses NVML when it finds GPUs and RAPL when readable, and without either
        measures no energy, with a warning saying why. Naming ``nvml`` or ``rapl`` when it is
        not there raises :class:`EnergySourceUnavailableError` with a hint.

        ``own_pids`` gives this run's processes, whose compute contexts
        on a metered GPU are not foreign (default: this process and its descendants); where
        it returns None, which processes are the run's cannot be told, and none is judged.

        ``host`` says whether this process meters the host-wide energy (RAPL). RAPL counts the
        whole host, so of several processes of one run on one host only one should (the
        harness picks the first on each host); the others meter their GPUs only, and having
        no energy source of their own is then no problem to report.
        """
        config = config or EnergyConfig()
        env = os.environ if environ is None else environ
        source = config.source
        if source == "none":  # asked for: nothing to warn about
            return cls(config, session=None, gpus=[], rapl=None, clock=clock)
        session: NvmlSession | None = None
        devices: list[NvmlDevice] = []
        rapl: RaplReader | None = None
        reasons: list[str] = []  # each source's whole story, kept in the warning's figures
        short: list[str] = []  # ... and in one line
        setup: list[MeasurementWarning] = []
        on_no_gpu = gpus is not None and not gpus
        if source in ("auto", "nvml") and on_no_gpu:
            # nothing of this run is on a GPU: NVML is not even opened
            if source == "nvml":
                raise EnergySourceUnavailableError(
                    "energy.source is 'nvml' but the model was placed on no GPU; name the GPUs "
                    "to meter in energy.devices, or set energy.source to 'rapl' or 'none'"
                )
            reasons.append("NVML: the model is on no GPU, so no GPU is metered")
            short.append("the model is on no GPU")
        elif source in ("auto", "nvml"):
            try:
                session = NvmlSession.open(nvml)
                devices = _open_gpus(session, gpus, env)
                if not devices:
                    raise EnergyError(
                        "NVML found no GPU for this process (check CUDA_VISIBLE_DEVICES and "
                        "`nvidia-smi -L`)"
                    )
            except EnergyError as exc:
                devices = []
                if session is not None:
                    session.close()
                    session = None
                if source == "nvml":
                    raise EnergySourceUnavailableError(
                        f"energy.source is 'nvml' but NVML cannot be used: {exc}"
                    ) from None
                reasons.append(f"NVML: {exc}")
                short.append("NVML cannot be used")
                logger.info("no NVML energy: %s", exc)
        if source in ("auto", "rapl") and host:
            try:
                rapl = RaplReader.open(rapl_root)
            except RaplUnavailableError as exc:
                if source == "rapl":
                    raise EnergySourceUnavailableError(
                        f"energy.source is 'rapl' but RAPL cannot be read: {exc}"
                    ) from None
                reasons.append(f"RAPL: {exc}")
                short.append(
                    "RAPL is readable by root only"
                    if isinstance(exc, RaplPermissionError)
                    else "RAPL is not exposed here"
                )
                logger.info("no RAPL energy: %s", exc)
                if isinstance(exc, RaplPermissionError):  # there, but not for this user
                    setup.append(
                        warning(
                            "rapl_unreadable",
                            f"host CPU energy is not measured: {exc}",
                        )
                    )
        unavailable = details = None
        # a process that leaves the host's energy to another and has no GPU of its own has
        # nothing to report; one whose GPUs could not be metered does
        if not devices and rapl is None and (host or not on_no_gpu):
            unavailable = " and ".join(short)
            details = "; ".join(reasons)
            logger.info("energy will not be measured: %s", details)
        if source == "auto" and not devices and rapl is not None and not on_no_gpu:
            setup.append(
                warning(
                    "cpu_energy_only",
                    f"no GPU energy, CPU energy (RAPL) only: {'; '.join(reasons)}; GPU work, "
                    "if any, is not in the energy figures",
                )
            )
        return cls(
            config,
            session=session,
            gpus=devices,
            rapl=rapl,
            unavailable_reason=unavailable,
            unavailable_details=details,
            setup_warnings=setup,
            clock=clock,
            own_pids=own_pids,
        )

    @property
    def simulated(self) -> int | None:
        """How many GPUs are simulated (``LLEM_SIMULATED_GPUS``); None for real ones."""
        return self.session.simulated if self.session is not None and self.gpus else None

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources opened: ('nvml',), ('rapl',), ('nvml', 'rapl') or ()."""
        return (("nvml",) if self.gpus else ()) + (("rapl",) if self.rapl is not None else ())

    @property
    def devices(self) -> list[DeviceInfo]:
        """The GPUs measured, as a result records them."""
        return [gpu.device_info() for gpu in self.gpus]

    @property
    def device_ids(self) -> list[str]:
        """Every measured device id: GPU UUIDs, then RAPL domain ids."""
        rapl = [zone.device_id for zone in self.rapl.zones] if self.rapl is not None else []
        return [gpu.uuid for gpu in self.gpus] + rapl

    def environment(self, *, packages: Sequence[str] = DEFAULT_PACKAGES) -> EnvironmentSnapshot:
        """An environment snapshot of this machine, describing the measured GPUs."""
        if self.session is None:
            return collect_environment(use_nvml=False, packages=packages)
        return collect_environment(
            session=self.session, gpu_indices=[gpu.index for gpu in self.gpus], packages=packages
        )

    def clock_events(self) -> dict[str, dict[str, int]]:
        """Per GPU UUID with NVML's cumulative clock-event durations: them now, ns."""
        found = {gpu.uuid: gpu.clock_event_ns() for gpu in self.gpus}
        return {uuid: events for uuid, events in found.items() if events is not None}

    def device_states(self) -> list[DeviceState]:
        """Every metered GPU now (clocks, P-state, power limits, compute processes)."""
        if not self.gpus:
            return []
        own = self.own_pids()
        return [gpu.state(None if own is None else set(own)) for gpu in self.gpus]

    def process_environment(
        self, at_start: Sequence[DeviceState], at_end: Sequence[DeviceState]
    ) -> ProcessEnvironment | None:
        """The driver and the metered GPUs' states, as a process result records them."""
        if self.session is None or not self.gpus:
            return None
        return ProcessEnvironment(
            driver_version=self.session.driver_version(),
            cuda_version=self.session.cuda_version(),
            at_start=list(at_start),
            at_end=list(at_end),
        )

    def start(self) -> EnergyWindow:
        """Open a measurement window (one at a time per meter)."""
        if self._window_open:
            raise EnergyError("a measurement window is already open on this meter; stop it first")
        self._window_open = True
        try:
            return EnergyWindow(self)
        except BaseException:
            self._window_open = False
            raise

    def window_closed(self) -> None:
        """Called by :meth:`EnergyWindow.stop`."""
        self._window_open = False

    def measure_baseline(
        self,
        config: BaselineConfig,
        *,
        cache_dir: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        state: str = IDLE_STATE,
    ) -> dict[str, BaselineMeasurement]:
        """Idle power of every measured device, reused from the cache when young enough.

        Call it with the devices in ``state`` (the harness: the model loaded, the device
        synchronised and idle). Devices without a usable cached figure for that state, their
        power limit and driver are measured together over ``config.duration_s``, and checked
        (see :func:`idle_problems`): a device that does not look idle is measured once more,
        and if it still does not, its figure is kept with its problems, not cached, and
        warned about (``baseline_not_idle``). The result (also attached to every later
        window's DeviceEnergy) says fresh, cached (with its age) or unavailable per device.
        """
        self.baseline_warnings = []
        ids = self.device_ids
        if not config.enabled:
            self.baselines = {}
            return {}
        cache = BaselineCache(cache_dir, ttl_s=config.cache_ttl_s, now=now)
        conditions = self._conditions(state)
        idle_c = {
            gpu.uuid: known
            for gpu in self.gpus
            if (known := cache.idle_temperature_c(gpu.uuid, conditions[gpu.uuid])) is not None
        }
        now_c = {s.uuid: s.temperature_c for s in self.device_states() if s.temperature_c}
        warm = _warm_starts(now_c, idle_c)  # judged cached figure or not
        self.baseline_warnings.extend(warm)
        warm_ids = {w.figures["device"] for w in warm}
        found: dict[str, BaselineMeasurement] = {}
        for device_id in ids:
            cached = cache.load(device_id, conditions[device_id])
            if cached is not None:
                found[device_id] = cached
        missing = [device_id for device_id in ids if device_id not in found]
        if missing:
            reading = self._idle_reading(config, sleep)
            problems = idle_problems(reading, self.gpus)
            attempts = 1
            if any(problems.get(device_id) for device_id in missing):  # all measured again
                logger.info("devices not idle at baseline (%s): measuring again", problems)
                reading = self._idle_reading(config, sleep)
                problems = idle_problems(reading, self.gpus)
                attempts = 2
            temperatures = _mean_temperatures(reading.samples, self.gpus)
            for e in reading.energy:
                if e.device_uuid not in missing or reading.duration_s <= 0.0:
                    continue
                power_w = e.energy_j / reading.duration_s
                seen = problems.get(e.device_uuid, [])
                found[e.device_uuid] = BaselineMeasurement(
                    method="fresh",
                    power_w=power_w,
                    age_s=0.0,
                    duration_s=reading.duration_s,
                    state=state,
                    temperature_c=temperatures.get(e.device_uuid),
                    attempts=attempts,
                    problems=seen,
                )
                if seen:
                    self._not_idle(e.device_uuid, power_w, seen)
                elif e.device_uuid not in warm_ids:  # a warm GPU's idle figure is high
                    cache.store(
                        e.device_uuid,
                        power_w,
                        reading.duration_s,
                        conditions=conditions[e.device_uuid],
                        state=state,
                        temperature_c=temperatures.get(e.device_uuid),
                    )
        for device_id in ids:
            found.setdefault(device_id, BaselineMeasurement(method="unavailable", power_w=None))
        self.baselines = found
        return dict(found)

    def _not_idle(self, device_id: str, power_w: float, seen: Sequence[str]) -> None:
        self.baseline_warnings.append(
            warning(
                "baseline_not_idle",
                f"{device_id} did not look idle while its baseline was measured, twice "
                f"({'; '.join(seen)}): its {power_w:.1f} W idle figure and every adjusted "
                "figure may be off; stop other work on it, let it cool, and run again (the "
                "figure was not cached)",
                device=device_id,
                power_w=power_w,
                problems="; ".join(seen),
            )
        )

    def _idle_reading(
        self, config: BaselineConfig, sleep: Callable[[float], None]
    ) -> "EnergyReading":
        window = self.start()
        sleep(config.duration_s)
        return window.stop()

    def _conditions(self, state: str) -> dict[str, str]:
        """Per device id: what a cached figure must have been measured under to be reused."""
        driver = self.session.driver_version() if self.session is not None else None
        limits = {s.uuid: s.power_limit_w for s in self.device_states()}
        conditions = {
            gpu.uuid: f"{state}; power limit {limits.get(gpu.uuid)} W; driver {driver}"
            for gpu in self.gpus
        }
        for device_id in self.device_ids:
            conditions.setdefault(device_id, state)  # a RAPL domain: the state alone
        return conditions

    def close(self) -> None:
        """Release NVML; the meter cannot measure afterwards."""
        if self.session is not None:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

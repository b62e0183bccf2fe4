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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from llem_energy.baseline import BaselineCache
from llem_energy.checks import (
    GAP_FACTOR,
    MeasurementFacts,
    measurement_warnings,
    thermal_drift_c,
)
from llem_energy.environment import DEFAULT_PACKAGES, collect_environment
from llem_energy.errors import EnergyError, EnergySourceUnavailableError, RaplUnavailableError
from llem_energy.nvml import NvmlDevice, NvmlSession, resolve_gpu_indices
from llem_energy.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter, RaplReader
from llem_energy.sampler import PowerSampler, integrate_power_j, sample_gaps
from llem_energy.throttle import summarise_throttle
from llem_schema import (
    BaselineConfig,
    BaselineMeasurement,
    DeviceEnergy,
    DeviceInfo,
    EnergyConfig,
    EnvironmentSnapshot,
    PowerSample,
    ThermalThrottleInfo,
)
from llem_schema.measurement import EnergyMethod
from llem_schema.metrics import adjusted_energy_j

__all__ = ["EnergyMeter", "EnergyReading", "EnergyWindow"]

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
    warnings: list[str]
    """Measurement warnings judged from the window alone (see :meth:`warnings_with`)."""
    facts: MeasurementFacts
    """What the warnings were judged from."""

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

    def warnings_with(self, *, prompt_count: int | None) -> list[str]:
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
        self._extra: list[str] = list(meter.setup_warnings)
        self._start_mj: dict[str, int] = {}
        self._stopped = False
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
                f"GPU {gpu.uuid}: energy counter unreadable at window {when} ({exc}); "
                "integrated power is used instead"
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
            result = self._sampler.stop()
            meter.window_closed()
        duration_s = max(0.0, end_s - self._origin_s)
        integrated = integrate_power_j(result.samples)
        energy: list[DeviceEnergy] = []
        for gpu in meter.gpus:
            counter_j = None
            if gpu.uuid in end_mj:
                delta_mj = end_mj[gpu.uuid] - self._start_mj[gpu.uuid]
                if delta_mj >= 0:
                    counter_j = delta_mj / 1000.0
                else:
                    self._extra.append(
                        f"GPU {gpu.uuid}: energy counter went backwards ({delta_mj} mJ; a driver "
                        "reload or GPU reset?): integrated power is used instead"
                    )
            integrated_j = integrated.get(gpu.index)
            has_power = sum(
                1 for s in result.samples if s.gpu_index == gpu.index and s.gpu_power_w is not None
            )
            if has_power < 2:
                integrated_j = None
            if counter_j is None and integrated_j is None:
                self._extra.append(
                    f"GPU {gpu.uuid}: no energy figure (no counter and fewer than two power "
                    "readings); it is left out of the totals"
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
        ticks = {
            gpu.uuid: sum(1 for x in result.samples if x.gpu_index == gpu.index)
            for gpu in meter.gpus
        }
        facts = MeasurementFacts(
            duration_s=duration_s,
            energy=energy,
            energy_unavailable_reason=meter.unavailable_reason,
            sample_period_s=self._sampler.period_s,
            gaps=sample_gaps(result.samples, self._sampler.period_s, factor=GAP_FACTOR),
            throttle=throttle,
            thermal_drift_c=thermal_drift_c(result.samples),
            persistence_mode={gpu.uuid: meter.persistence[gpu.uuid] for gpu in meter.gpus},
            ecc_enabled={gpu.uuid: meter.ecc[gpu.uuid] for gpu in meter.gpus},
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
        )


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
        setup_warnings: Sequence[str] = (),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.session = session
        self.gpus = list(gpus)
        self.rapl = rapl
        self.unavailable_reason = unavailable_reason
        self.setup_warnings = list(setup_warnings)
        self.clock = clock
        self.baselines: dict[str, BaselineMeasurement] = {}
        self.persistence = {gpu.uuid: gpu.persistence_mode() for gpu in self.gpus}
        self.ecc = {gpu.uuid: gpu.ecc_enabled() for gpu in self.gpus}
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
        """
        config = config or EnergyConfig()
        env = os.environ if environ is None else environ
        source = config.source
        if source == "none":
            return cls(
                config,
                session=None,
                gpus=[],
                rapl=None,
                unavailable_reason="energy.source is 'none'; set it to 'auto' to measure energy",
                clock=clock,
            )
        session: NvmlSession | None = None
        devices: list[NvmlDevice] = []
        rapl: RaplReader | None = None
        reasons: list[str] = []
        on_no_gpu = gpus is not None and not gpus
        if source in ("auto", "nvml") and on_no_gpu:
            # nothing of this run is on a GPU: NVML is not even opened
            if source == "nvml":
                raise EnergySourceUnavailableError(
                    "energy.source is 'nvml' but the model was placed on no GPU; name the GPUs "
                    "to meter in energy.devices, or set energy.source to 'rapl' or 'none'"
                )
            reasons.append("NVML: the model is on no GPU, so no GPU is metered")
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
                logger.info("no NVML energy: %s", exc)
        if source in ("auto", "rapl"):
            try:
                rapl = RaplReader.open(rapl_root)
            except RaplUnavailableError as exc:
                if source == "rapl":
                    raise EnergySourceUnavailableError(
                        f"energy.source is 'rapl' but RAPL cannot be read: {exc}"
                    ) from None
                reasons.append(f"RAPL: {exc}")
                logger.info("no RAPL energy: %s", exc)
        unavailable = None
        if not devices and rapl is None:
            unavailable = "no energy source could be opened (" + "; ".join(reasons) + ")"
            logger.info("energy will not be measured: %s", unavailable)
        setup: list[str] = []
        if source == "auto" and not devices and rapl is not None and not on_no_gpu:
            setup.append(
                f"no GPU energy, CPU energy (RAPL) only: {'; '.join(reasons)}; GPU work, if "
                "any, is not in the energy figures"
            )
        return cls(
            config,
            session=session,
            gpus=devices,
            rapl=rapl,
            unavailable_reason=unavailable,
            setup_warnings=setup,
            clock=clock,
        )

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
    ) -> dict[str, BaselineMeasurement]:
        """Idle power of every measured device, reused from the cache when young enough.

        Devices without a usable cached figure are measured together over
        ``config.duration_s`` (keep them idle meanwhile) and the figures cached. The result
        (also attached to every later window's DeviceEnergy) says fresh, cached (with its
        age) or unavailable per device.
        """
        ids = self.device_ids
        if not config.enabled:
            self.baselines = {}
            return {}
        cache = BaselineCache(cache_dir, ttl_s=config.cache_ttl_s, now=now)
        found: dict[str, BaselineMeasurement] = {}
        for device_id in ids:
            cached = cache.load(device_id)
            if cached is not None:
                found[device_id] = cached
        if len(found) < len(ids):
            window = self.start()
            sleep(config.duration_s)
            reading = window.stop()
            for e in reading.energy:
                if e.device_uuid in found or reading.duration_s <= 0.0:
                    continue
                power_w = e.energy_j / reading.duration_s
                found[e.device_uuid] = BaselineMeasurement(
                    method="fresh", power_w=power_w, age_s=0.0, duration_s=reading.duration_s
                )
                cache.store(e.device_uuid, power_w, reading.duration_s)
        for device_id in ids:
            found.setdefault(device_id, BaselineMeasurement(method="unavailable", power_w=None))
        self.baselines = found
        return dict(found)

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

"""Simulated GPUs, for everyone without hardware: ``LLEM_SIMULATED_GPUS=N`` makes every
process of a run open the fake NVML of :mod:`llem_energy.testing` with N GPUs instead of
the real one, so backend teams, CI and demos exercise the whole energy path (sampling,
counters, baseline, warnings, the timeseries) on any machine.

A simulated GPU's power follows the CPU load of the process that reads it: idle when the
process is idle (or nearly: below a fifth of a core), towards its peak while the process
works, and its energy counter is the exact integral of that power. Nothing about it is a measurement: a result of a simulated
run says so (``simulated`` and the ``simulated_gpus`` warning).
"""

import hashlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from llem_energy.testing import COUNTER_OFFSET_MJ, FakeGpu, FakeNvml
from llem_schema import ConfigError

__all__ = [
    "SIMULATED_GPUS_ENV",
    "SimulatedGpu",
    "simulated_gpu_count",
    "simulated_nvml",
    "simulated_uuid",
]

SIMULATED_GPUS_ENV: Final = "LLEM_SIMULATED_GPUS"
MAX_SIMULATED_GPUS: Final = 16
DRIVER_VERSION: Final = "simulated"
_UPDATE_S: Final = 0.05
"""The load is re-read at most this often, s."""
_IDLE_SHARE: Final = 0.2
"""A process using less than this share of a core is idle to its simulated GPU: llem's own
bookkeeping (sampling, reading /proc) comes in bursts a GPU would never see."""
_LOOKBACK_S: Final = 0.5
"""After a longer stretch without a reading, its average load goes into the energy, but the
load read now starts afresh (idle until the next reading): as a GPU's utilisation covers
only the driver's last sample period, not all the work since anyone last asked."""


def simulated_gpu_count(environ: Mapping[str, str] | None = None) -> int | None:
    """How many GPUs ``LLEM_SIMULATED_GPUS`` asks for; None when unset or empty. Any other
    value is a :class:`~llem_schema.ConfigError` (a usage error: exit code 2)."""
    env = os.environ if environ is None else environ
    value = env.get(SIMULATED_GPUS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_SIMULATED_GPUS:
        raise ConfigError(
            f"{SIMULATED_GPUS_ENV} must be a whole number from 1 to {MAX_SIMULATED_GPUS} (the "
            f"GPUs to simulate), got {value!r}; unset it to use the real GPUs"
        )
    return int(value)


@dataclass
class SimulatedGpu(FakeGpu):
    """A fake GPU whose power follows this process's CPU load, between ``idle_w`` and
    ``peak_w``; thread-safe (the sampler and the harness read it at once)."""

    name: str = "llem simulated GPU"
    idle_w: float = 60.0
    peak_w: float = 450.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_s: float | None = field(default=None, repr=False)
    _last_cpu_s: float = field(default=0.0, repr=False)
    _energy_j: float = field(default=0.0, repr=False)
    _load: float = field(default=0.0, repr=False)

    def _advance(self, t_s: float) -> None:
        with self._lock:
            if self._last_s is None:
                self._last_s, self._last_cpu_s = t_s, time.process_time()
                return
            elapsed_s = t_s - self._last_s
            if elapsed_s < _UPDATE_S:
                return
            cpu_s = time.process_time()
            share = (cpu_s - self._last_cpu_s) / elapsed_s
            self._load = min(1.0, max(0.0, (share - _IDLE_SHARE) / (1.0 - _IDLE_SHARE)))
            self._energy_j += self._power_w() * elapsed_s  # the interval's power, held
            if elapsed_s > _LOOKBACK_S:
                self._load = 0.0
            self._last_s, self._last_cpu_s = t_s, cpu_s

    def _power_w(self) -> float:
        return self.idle_w + (self.peak_w - self.idle_w) * self._load

    def true_power_w(self, t_s: float) -> float:
        self._advance(t_s)
        return self._power_w()

    def true_energy_j(self, t_s: float) -> float:
        self._advance(t_s)
        with self._lock:  # a time before the last update: back along the current power
            behind_s = max(0.0, (self._last_s or t_s) - t_s)
            return max(0.0, self._energy_j - self._power_w() * behind_s)

    def counter_mj(self, t_s: float) -> int:
        return COUNTER_OFFSET_MJ + int(self.true_energy_j(t_s) * 1000.0)

    def temperature_at_c(self, t_s: float) -> float:
        return 30.0 + 0.08 * (self.true_power_w(t_s) - self.idle_w)

    def utilization_at_pct(self, t_s: float) -> int:
        self._advance(t_s)
        return round(100 * self._load)


def simulated_uuid(index: int, host: str | None = None) -> str:
    """The UUID of simulated GPU ``index`` of ``host`` (default: this one): the same in every
    process of a host, and another on another host, as a real GPU's is."""
    name = socket.gethostname() if host is None else host
    tag = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"GPU-51a7ed00-{tag[:4]}-4{tag[4:7]}-8{tag[7:10]}-{index:012d}"


def simulated_nvml(count: int) -> FakeNvml:
    """A fake NVML module with ``count`` simulated GPUs of this host."""
    gpus = [SimulatedGpu(uuid=simulated_uuid(index), utilization_pct=0) for index in range(count)]
    return FakeNvml(gpus, driver_version=DRIVER_VERSION)

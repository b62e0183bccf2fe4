"""Power sampler: cost per tick, the CPU share of its thread, achieved rate and how fast
stop() returns, at 10 Hz and 100 Hz, each against a baseline in the same run.

Runs on the FAKE NVML (llem_energy.testing.FakeNvml), so it measures llem's own overhead
around the NVML calls, not the driver's latency; on a GPU machine the real calls add their
own cost.

- Per tick, in a hot loop: the bare NVML calls one sample makes (baseline) against
  ``sample_once``.
- CPU share of a sampling thread: its own CPU time (user + system, from Linux's
  ``/proc/self/task/<tid>/schedstat``) between just after ``start()`` and just before
  ``stop()``, over the wall time between. Baseline: a bare thread that waits for each tick
  as the sampler does (on a lock, with a timeout) and makes the same NVML calls, without any
  bookkeeping. A reference row shows the same thread making no calls at all: what waking
  up the rate's number of times a second costs by itself.
- Achieved rate (``achieved_rate_hz`` of the samples) against the requested one, and the
  wall time of ``stop()`` against one period.

Each case runs ROUNDS times, the cases in turn, for WINDOW_S each; the table shows the median
and the spread (max - min). Run: uv run --frozen python bench/bench_energy_sampler.py
"""

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pynvml

from llem_energy import NvmlSession, PowerSampler, achieved_rate_hz
from llem_energy.testing import FakeHandle, FakeNvml

GPUS = 2
ROUNDS = 5
CALLS_PER_ROUND = 2000
WINDOW_S = 2.0
RATES_HZ = (10.0, 100.0)
TARGETS = {100.0: ("<= 1 %", ">= 0.95")}


def one_tick(fake: FakeNvml, handles: list[FakeHandle]) -> None:
    """One sample's NVML calls for every GPU, called directly."""
    for handle in handles:
        fake.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
        fake.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        fake.nvmlDeviceGetMemoryInfo(handle)
        fake.nvmlDeviceGetUtilizationRates(handle)
        fake.nvmlDeviceGetCurrentClocksEventReasons(handle)
        fake.nvmlDeviceGetTotalEnergyConsumption(handle)


def per_call_s(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        call()
    return (time.perf_counter() - start) / CALLS_PER_ROUND


def thread_cpu_s(thread: threading.Thread) -> float:
    """CPU time of one thread of this process so far, s (user + system)."""
    stat = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text(encoding="ascii")
    return int(stat.split()[0]) / 1e9


class BareThread:
    """The cheapest sampling thread: it waits for each tick as PowerSampler does, then
    runs ``work`` (the bare NVML calls of one tick, or nothing)."""

    def __init__(self, rate_hz: float, work: Callable[[], None]) -> None:
        self.period_s = 1.0 / rate_hz
        self.ticks = 0
        self._work = work
        self._running = threading.Lock()
        self._running.acquire()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_s = time.perf_counter() + self.period_s
        while not self._running.acquire(timeout=max(0.0, next_s - time.perf_counter())):
            self._work()
            self.ticks += 1
            next_s += self.period_s
            now_s = time.perf_counter()
            if next_s < now_s:
                next_s = now_s + self.period_s

    def stop(self) -> None:
        self._running.release()
        self.thread.join()


Run = tuple[float, float, float]
"""CPU share, achieved rate in Hz, stop() wall time in s."""


def bare_run(rate_hz: float, work: Callable[[], None]) -> Run:
    bare = BareThread(rate_hz, work)
    bare.thread.start()
    cpu0, wall0 = thread_cpu_s(bare.thread), time.perf_counter()
    time.sleep(WINDOW_S)
    cpu1, wall1, ticks = thread_cpu_s(bare.thread), time.perf_counter(), bare.ticks
    began = time.perf_counter()
    bare.stop()
    return (cpu1 - cpu0) / (wall1 - wall0), ticks / (wall1 - wall0), time.perf_counter() - began


def sampler_run(session: NvmlSession, rate_hz: float) -> Run:
    sampler = PowerSampler([session.device(i) for i in range(GPUS)], rate_hz=rate_hz)
    sampler.start(time.perf_counter())
    (thread,) = [t for t in threading.enumerate() if t.name == "llem-power-sampler"]
    cpu0, wall0 = thread_cpu_s(thread), time.perf_counter()
    time.sleep(WINDOW_S)
    cpu1, wall1 = thread_cpu_s(thread), time.perf_counter()
    began = time.perf_counter()
    result = sampler.stop()
    stop_s = time.perf_counter() - began
    return (cpu1 - cpu0) / (wall1 - wall0), achieved_rate_hz(result.samples) or 0.0, stop_s


def row(
    case: str, values: list[float], unit: str, scale: float, base: float, target: str = ""
) -> str:
    median = statistics.median(values)
    spread = (max(values) - min(values)) * scale
    return (
        f"| {case} | {median * scale:.2f} {unit} | {spread:.2f} {unit} | "
        f"{median / base:.3f} | {target} |"
    )


def measure(session: NvmlSession, tick: Callable[[], None], case: str, hz: float) -> Run:
    if case == "wake-ups only":
        return bare_run(hz, lambda: None)
    if case == "bare":
        return bare_run(hz, tick)
    return sampler_run(session, hz)


def main() -> None:
    fake = FakeNvml.with_gpus(GPUS)
    with NvmlSession.open(fake) as session:
        handles = [fake.nvmlDeviceGetHandleByIndex(i) for i in range(GPUS)]

        def bare_tick() -> None:
            one_tick(fake, handles)

        sampler = PowerSampler([session.device(i) for i in range(GPUS)], rate_hz=0.001)
        sampler.start(time.perf_counter())
        per_call_s(bare_tick), per_call_s(sampler.sample_once)  # warm-up
        bare = [per_call_s(bare_tick) for _ in range(ROUNDS)]
        ours = [per_call_s(sampler.sample_once) for _ in range(ROUNDS)]
        sampler.stop()
        runs: dict[tuple[str, float], list[Run]] = {}
        for _ in range(ROUNDS):
            for hz in RATES_HZ:
                for case in ("wake-ups only", "bare", "llem"):
                    runs.setdefault((case, hz), []).append(measure(session, bare_tick, case, hz))

    print(
        f"llem energy sampler bench: FAKE NVML (llem_energy.testing), {GPUS} GPUs, no real "
        f"driver; {ROUNDS} rounds of {WINDOW_S:g} s per thread case"
    )
    print("\n| case | median | spread | ratio | target |\n|---|---|---|---|---|")
    base = statistics.median(bare)
    print(row("bare NVML calls per tick (baseline)", bare, "µs", 1e6, base))
    print(row("`sample_once` per tick", ours, "µs", 1e6, base))
    for hz in RATES_HZ:
        cpu_target, rate_target = TARGETS.get(hz, ("", ""))
        wake, bare_thread, llem = (runs[case, hz] for case in ("wake-ups only", "bare", "llem"))
        base_cpu = statistics.median(r[0] for r in bare_thread)
        print(
            row(f"CPU share at {hz:g} Hz: wake-ups only", [r[0] for r in wake], "%", 100, base_cpu)
        )
        print(
            row(
                f"CPU share at {hz:g} Hz: bare NVML thread (baseline)",
                [r[0] for r in bare_thread],
                "%",
                100,
                base_cpu,
            )
        )
        print(
            row(
                f"**CPU share at {hz:g} Hz: sampler thread**",
                [r[0] for r in llem],
                "%",
                100,
                base_cpu,
                cpu_target,
            )
        )
        print(
            row(
                f"achieved rate at {hz:g} Hz (baseline: requested)",
                [r[1] for r in llem],
                "Hz",
                1,
                hz,
                rate_target,
            )
        )
        print(
            row(
                f"`stop()` at {hz:g} Hz (baseline: one period)",
                [r[2] for r in llem],
                "ms",
                1e3,
                1 / hz,
            )
        )


if __name__ == "__main__":
    main()

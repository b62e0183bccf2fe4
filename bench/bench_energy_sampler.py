"""Power sampler cost per sample, and achieved vs requested rate at 10 Hz and 100 Hz.

Runs on the FAKE NVML (llem_energy.testing.FakeNvml), so it measures llem's own overhead
around the NVML calls, not the driver's latency; on a GPU machine the real calls add their
own cost. Baseline, in the same run: the bare NVML calls one sample makes, without the
sampler. Run: uv run --frozen python bench/bench_energy_sampler.py
"""

import statistics
import time

import pynvml

from llem_energy import NvmlSession, PowerSampler, achieved_rate_hz
from llem_energy.testing import FakeHandle, FakeNvml

GPUS = 2
ROUNDS = 5
CALLS_PER_ROUND = 2000
RATE_WINDOW_S = 2.0


def bare_calls_s(fake: FakeNvml, handles: list[FakeHandle]) -> float:
    """One sample's NVML calls for every GPU, called directly: the baseline."""
    start = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        for handle in handles:
            fake.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
            fake.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
            fake.nvmlDeviceGetMemoryInfo(handle)
            fake.nvmlDeviceGetUtilizationRates(handle)
            fake.nvmlDeviceGetCurrentClocksEventReasons(handle)
            fake.nvmlDeviceGetTotalEnergyConsumption(handle)
    return (time.perf_counter() - start) / CALLS_PER_ROUND


def sampler_calls_s(sampler: PowerSampler) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        sampler.sample_once()
    return (time.perf_counter() - start) / CALLS_PER_ROUND


def rate_run(session: NvmlSession, rate_hz: float) -> tuple[float, float]:
    """Achieved rate and the sampler thread's CPU time per second of wall time."""
    devices = [session.device(i) for i in range(GPUS)]
    sampler = PowerSampler(devices, rate_hz=rate_hz)
    cpu0 = time.thread_time()
    proc0 = time.process_time()
    sampler.start(time.perf_counter())
    time.sleep(RATE_WINDOW_S)
    result = sampler.stop()
    cpu_s = time.process_time() - proc0 - (time.thread_time() - cpu0)
    return achieved_rate_hz(result.samples) or 0.0, cpu_s / RATE_WINDOW_S


def main() -> None:
    fake = FakeNvml.with_gpus(GPUS)
    with NvmlSession.open(fake) as session:
        handles = [fake.nvmlDeviceGetHandleByIndex(i) for i in range(GPUS)]
        sampler = PowerSampler([session.device(i) for i in range(GPUS)], rate_hz=0.001)
        sampler.start(time.perf_counter())
        bare_calls_s(fake, handles), sampler_calls_s(sampler)  # warm-up
        bare = [bare_calls_s(fake, handles) for _ in range(ROUNDS)]
        ours = [sampler_calls_s(sampler) for _ in range(ROUNDS)]
        sampler.stop()
        rates = {hz: [rate_run(session, hz) for _ in range(3)] for hz in (10.0, 100.0)}

    print(
        f"llem energy sampler bench: FAKE NVML (llem_energy.testing), {GPUS} GPUs, no real driver"
    )
    print(f"{'case':44} {'median':>12} {'spread':>12} {'ratio':>8}")
    bare_med = statistics.median(bare)
    ours_med = statistics.median(ours)
    print(
        f"{'bare NVML calls per tick (baseline)':44} {bare_med * 1e6:9.1f} us {(max(bare) - min(bare)) * 1e6:9.1f} us {1.0:8.2f}"
    )
    print(
        f"{'sampler.sample_once per tick':44} {ours_med * 1e6:9.1f} us {(max(ours) - min(ours)) * 1e6:9.1f} us {ours_med / bare_med:8.2f}"
    )
    for hz, runs in rates.items():
        achieved = [r for r, _ in runs]
        cpu = [c for _, c in runs]
        med = statistics.median(achieved)
        print(
            f"{f'achieved rate at {hz:g} Hz (baseline: requested)':44} {med:9.2f} Hz {max(achieved) - min(achieved):9.2f} Hz {med / hz:8.3f}"
        )
        print(
            f"{f'sampler CPU share at {hz:g} Hz':44} {statistics.median(cpu) * 100:10.2f} % {(max(cpu) - min(cpu)) * 100:10.2f} % {'':>8}"
        )


if __name__ == "__main__":
    main()

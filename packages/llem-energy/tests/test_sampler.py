"""The sampler's arithmetic and per-sample work with injected clocks; the thread robustly."""

import time

import pynvml
import pytest

from llem_energy import (
    NvmlSession,
    PowerSampler,
    SampleGap,
    achieved_rate_hz,
    integrate_power_j,
    sample_gaps,
)
from llem_energy.testing import FakeGpu, FakeNvml, ManualClock
from llem_schema import PowerSample


def _row(t: float, power: float | None, index: int = 0) -> PowerSample:
    return PowerSample(timestamp_s=t, gpu_index=index, gpu_power_w=power, gpu_temperature_c=50.0)


def test_trapezoid_per_gpu() -> None:
    samples = [
        _row(0.0, 100.0),
        _row(0.0, 10.0, 1),
        _row(1.0, 200.0),
        _row(2.0, 200.0),
        _row(4.0, 30.0, 1),
    ]
    assert integrate_power_j(samples) == {0: pytest.approx(150.0 + 200.0), 1: pytest.approx(80.0)}


def test_trapezoid_skips_missing_power_and_single_points() -> None:
    samples = [_row(0.0, 100.0), _row(1.0, None), _row(2.0, 100.0), _row(0.0, 5.0, 1)]
    assert integrate_power_j(samples) == {0: pytest.approx(200.0), 1: 0.0}


def test_gaps_longer_than_twice_the_period_are_found() -> None:
    samples = [_row(t, 1.0) for t in (0.0, 0.1, 0.2, 0.45, 0.5)] + [
        _row(0.0, 1.0, 1),
        _row(0.2, 1.0, 1),
    ]
    assert sample_gaps(samples, 0.1) == [SampleGap(0, 0.2, pytest.approx(0.25))]  # type: ignore[arg-type]


def test_achieved_rate() -> None:
    assert achieved_rate_hz([_row(t / 10, 1.0) for t in range(11)]) == pytest.approx(10.0)
    assert achieved_rate_hz([_row(0.0, 1.0)]) is None


def test_sample_once_stamps_from_the_origin_and_tracks_the_counter() -> None:
    clock = ManualClock(start_s=0.0)  # binary-exact steps, so the counter steps exactly
    gpu = FakeGpu(uuid="GPU-a", counter_update_period_s=0.125)
    fake = FakeNvml([gpu], clock=clock)
    ticks: list[float] = []
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler(
            [session.device(0)], rate_hz=0.001, clock=clock, on_tick=[lambda: ticks.append(clock())]
        )
        sampler.start(origin_s=clock() - 2.0)  # window opened two seconds ago
        for _ in range(6):
            clock.sleep(0.0625)
            sampler.sample_once()
        result = sampler.stop()
    times = [s.timestamp_s for s in result.samples]
    assert times[0] == pytest.approx(2.0)
    assert times[-1] == pytest.approx(2.375)
    assert len(result.samples) == len(ticks) == 8  # start + 6 + stop
    # A counter stepping every 0.125 s, read every 0.0625 s, changes every other sample.
    assert result.counter_update_period_s["GPU-a"] == pytest.approx(0.125)
    assert result.counter_changes["GPU-a"] == 3


def test_failed_reads_are_counted_not_fatal(clock: ManualClock) -> None:
    fake = FakeNvml.with_gpus(2, clock=clock)
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler([session.device(0), session.device(1)], rate_hz=0.001, clock=clock)
        sampler.start(clock())
        fake.gpus[1].failures["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_UNKNOWN
        sampler.sample_once()
        result = sampler.stop()
    assert [s.gpu_index for s in result.samples] == [0, 1, 0, 0]
    count, first = result.read_errors[fake.gpus[1].uuid]
    assert count == 2
    assert "temperature of GPU 1" in first


def test_thread_samples_in_the_background() -> None:
    fake = FakeNvml.with_gpus(1)
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler([session.device(0)], rate_hz=200.0)
        sampler.start(time.perf_counter())
        deadline = time.monotonic() + 10.0
        while fake.calls["nvmlDeviceGetTemperature"] < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        result = sampler.stop()
    assert len(result.samples) >= 6  # start, at least four from the thread, stop
    times = [s.timestamp_s for s in result.samples]
    assert times == sorted(times)
    assert times[0] >= 0.0


def test_sampler_refuses_a_nonpositive_rate_and_double_use() -> None:
    with pytest.raises(ValueError, match="rate_hz must be positive"):
        PowerSampler([], rate_hz=0.0)
    sampler = PowerSampler([], rate_hz=0.001)
    with pytest.raises(RuntimeError, match="not started"):
        sampler.stop()
    sampler.start(0.0)
    with pytest.raises(RuntimeError, match="already running"):
        sampler.start(0.0)
    sampler.stop()


def test_stop_wakes_the_thread_instead_of_waiting_out_the_period() -> None:
    fake = FakeNvml.with_gpus(1)
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler([session.device(0)], rate_hz=0.01)  # a 100 s period
        sampler.start(time.perf_counter())
        time.sleep(0.05)  # the thread is waiting for its first tick
        began = time.monotonic()
        result = sampler.stop()
        took_s = time.monotonic() - began
    assert took_s < 2.0  # a fiftieth of the period, with room for a loaded machine
    assert len(result.samples) == 2  # start and stop; the thread never ticked


def test_a_stalled_tick_is_not_made_up_by_a_burst_and_every_tick_runs_on_tick() -> None:
    # One tick stalls for ten periods; the next must come a period after it, not at once
    # ten times over to catch up. Load can only delay ticks, never add any.
    period_s = 0.02
    ticks: list[float] = []
    stalled: list[float] = []

    def on_tick() -> None:
        ticks.append(time.perf_counter())
        if len(ticks) == 3:
            time.sleep(10 * period_s)
            stalled.append(time.perf_counter())

    fake = FakeNvml.with_gpus(1)
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler([session.device(0)], rate_hz=1 / period_s, on_tick=[on_tick])
        sampler.start(time.perf_counter())
        deadline = time.monotonic() + 10.0
        while (not stalled or time.perf_counter() < stalled[0] + 0.1) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.01)
        result = sampler.stop()
    assert stalled, "the third tick never came"
    soon_after = [t for t in ticks if stalled[0] < t <= stalled[0] + 1.5 * period_s]
    assert len(soon_after) <= 2
    assert len(ticks) == len(result.samples)  # on_tick ran with every sample, start and stop too

import pynvml
import pytest

from llem_energy import THROTTLE_REASONS, summarise_throttle
from llem_schema import PowerSample

CAP = int(pynvml.nvmlClocksEventReasonSwPowerCap)
HOT = int(pynvml.nvmlClocksEventReasonHwThermalSlowdown)
IDLE = int(pynvml.nvmlClocksEventReasonGpuIdle)


def _row(t: float, reasons: int, temperature: float, index: int = 0) -> PowerSample:
    return PowerSample(
        timestamp_s=t,
        gpu_index=index,
        gpu_power_w=1.0,
        gpu_temperature_c=temperature,
        clock_event_reasons=reasons,
    )


def test_no_throttle_when_only_idle_reasons() -> None:
    info = summarise_throttle([_row(0.0, IDLE, 40.0), _row(1.0, 0, 41.0)])
    assert not info.detected
    assert info.throttled_s == 0.0
    assert (info.temperature_start_c, info.temperature_peak_c) == (40.0, 41.0)


def test_kinds_seconds_and_temperatures() -> None:
    samples = [
        _row(0.0, 0, 60.0),
        _row(1.0, CAP, 70.0),
        _row(2.0, CAP | HOT, 83.0),
        _row(3.0, 0, 80.0),
        _row(0.0, 0, 65.0, 1),
        _row(1.5, CAP, 66.0, 1),  # overlaps GPU 0's stretch: counted once
        _row(2.5, 0, 66.0, 1),
        _row(3.5, HOT, 66.0, 1),  # last sample: no following interval
    ]
    info = summarise_throttle(samples)
    assert info.detected
    assert info.power_cap
    assert info.hw_thermal
    assert not info.sw_thermal
    assert not info.hw_power_brake
    assert info.throttled_s == pytest.approx(2.0)  # [1, 3] union [1.5, 2.5]
    assert info.power_cap_s == pytest.approx(2.0)  # GPU 0 [1, 3], GPU 1 [1.5, 2.5]
    assert info.slowdown_s == pytest.approx(1.0)  # GPU 0 [2, 3]; GPU 1's last has no end
    assert info.temperature_start_c == 65.0
    assert info.temperature_peak_c == 83.0


def test_reason_bits_are_the_real_nvml_constants() -> None:
    assert THROTTLE_REASONS == {
        "hw_thermal": 0x40,
        "sw_thermal": 0x20,
        "power_cap": 0x4,
        "hw_power_brake": 0x80,
        "hw_slowdown": 0x8,
    }


def test_hardware_slowdown_0x8_is_a_slowdown() -> None:
    info = summarise_throttle([_row(0.0, 0x8, 50.0), _row(0.5, 0, 50.0)])
    assert info.detected
    assert info.hw_slowdown
    assert info.slowdown_s == pytest.approx(0.5)
    assert info.power_cap_s == 0.0

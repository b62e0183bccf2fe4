"""The fake follows the real pynvml: names, signatures, errors and structures."""

import inspect

import pynvml
import pytest

from llem_energy.testing import COUNTER_OFFSET_MJ, FakeGpu, FakeNvml, ManualClock


def test_every_fake_function_has_the_real_signature() -> None:
    fake_functions = [
        name
        for name in dir(FakeNvml)
        if name.startswith("nvml") and callable(getattr(FakeNvml, name))
    ]
    assert len(fake_functions) >= 20
    for name in fake_functions:
        real = inspect.signature(getattr(pynvml, name))
        fake = inspect.signature(getattr(FakeNvml(), name))
        assert list(fake.parameters) == list(real.parameters), name


def test_calls_before_init_raise_the_real_uninitialized_error() -> None:
    fake = FakeNvml.with_gpus(1)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()


def test_missing_library_raises_like_the_real_module() -> None:
    with pytest.raises(pynvml.NVMLError_LibraryNotFound) as caught:
        FakeNvml(library_missing=True).nvmlInit()
    assert caught.value.value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND


def test_counter_is_the_integral_of_power(clock: ManualClock) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-a", power_w=200.0, power_swing_w=80.0)], clock=clock)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    start = fake.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert start == COUNTER_OFFSET_MJ
    clock.sleep(1.5)
    grown = fake.nvmlDeviceGetTotalEnergyConsumption(handle) - start
    expected_mj = 1000 * fake.gpus[0].true_energy_j(1.5)
    assert grown == pytest.approx(expected_mj, abs=1)
    assert grown != pytest.approx(200.0 * 1.5 * 1000, rel=1e-3)  # the sine moved it


def test_instant_power_field_uses_real_structures(clock: ManualClock) -> None:
    fake = FakeNvml(
        [FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b", instant_power=False)], clock=clock
    )
    fake.nvmlInit()
    clock.sleep(0.5)
    values = fake.nvmlDeviceGetFieldValues(
        fake.nvmlDeviceGetHandleByIndex(0), [pynvml.NVML_FI_DEV_POWER_INSTANT]
    )
    assert isinstance(values[0], pynvml.c_nvmlFieldValue_t)
    assert values[0].nvmlReturn == pynvml.NVML_SUCCESS
    assert values[0].value.uiVal == int(fake.gpus[0].true_power_w(0.5) * 1000)
    old = fake.nvmlDeviceGetFieldValues(
        fake.nvmlDeviceGetHandleByIndex(1), [pynvml.NVML_FI_DEV_POWER_INSTANT]
    )
    assert old[0].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED


def test_older_gpu_and_driver_raise_real_codes(clock: ManualClock) -> None:
    fake = FakeNvml(
        [FakeGpu(uuid="GPU-old", energy_counter=False, clock_events_api=False)], clock=clock
    )
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetTotalEnergyConsumption(handle)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        fake.nvmlDeviceGetCurrentClocksEventReasons(handle)
    assert fake.nvmlDeviceGetCurrentClocksThrottleReasons(handle) == 0
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(5)

"""The NVML boundary: error translation, capability probing, reads."""

import pynvml
import pytest

from llem_energy import (
    EnergyError,
    GpuLostError,
    NvmlError,
    NvmlNotSupportedError,
    NvmlPermissionError,
    NvmlSession,
    NvmlUnavailableError,
    resolve_gpu_indices,
)
from llem_energy.nvml import translate_nvml_error
from llem_energy.testing import FakeGpu, FakeNvml, ManualClock


@pytest.mark.parametrize(
    ("code", "error_class", "hint"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, NvmlUnavailableError, "install the NVIDIA driver"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, NvmlUnavailableError, "kernel driver is not loaded"),
        (pynvml.NVML_ERROR_NOT_SUPPORTED, NvmlNotSupportedError, "does not offer it"),
        (pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, NvmlNotSupportedError, "upgrade the driver"),
        (pynvml.NVML_ERROR_NO_PERMISSION, NvmlPermissionError, "permission"),
        (pynvml.NVML_ERROR_GPU_IS_LOST, GpuLostError, "reset the GPU"),
        (pynvml.NVML_ERROR_UNKNOWN, NvmlError, "nvidia-smi -q"),
    ],
)
def test_nvml_codes_become_typed_one_line_errors(
    code: int, error_class: type[NvmlError], hint: str
) -> None:
    error = translate_nvml_error(pynvml, pynvml.NVMLError(code), "power of GPU 0")
    assert type(error) is error_class
    assert error.code == code
    message = str(error)
    assert message.startswith("NVML power of GPU 0 failed: ")
    assert hint in message
    assert "\n" not in message


def test_real_pynvml_without_a_driver_is_a_clear_error() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # pragma: no cover - only on a machine with an NVIDIA driver
        pynvml.nvmlShutdown()
        pytest.skip("this machine has NVML; the no-driver path is covered with the fake")
    with pytest.raises(
        NvmlUnavailableError, match=r"NVML_ERROR_LIBRARY_NOT_FOUND.*install the NVIDIA driver"
    ):
        NvmlSession.open()


def test_session_reads_versions_and_shuts_down_once(fake_nvml: FakeNvml) -> None:
    with NvmlSession.open(fake_nvml) as session:
        assert fake_nvml.init_count == 1
        assert session.driver_version() == "550.54.15"
        assert session.cuda_version() == "12.4"
        assert session.device_count() == 2
    assert fake_nvml.init_count == 0
    session.close()
    assert fake_nvml.init_count == 0


def test_device_reads_a_sample(clock: ManualClock) -> None:
    gpu = FakeGpu(
        uuid="GPU-a", clock_event_reasons=lambda t: int(pynvml.nvmlClocksEventReasonSwPowerCap)
    )
    fake = FakeNvml([gpu], clock=clock)
    with NvmlSession.open(fake) as session:
        device = session.device(0)
        clock.sleep(0.25)
        sample = device.read_sample(1.5)
    assert device.uuid == "GPU-a"
    assert device.has_energy_counter
    assert device.has_instant_power
    assert device.has_clock_reasons
    assert sample.timestamp_s == 1.5
    assert sample.gpu_index == 0
    assert sample.gpu_power_w == pytest.approx(gpu.true_power_w(0.25), abs=1e-3)
    assert sample.gpu_temperature_c == round(gpu.temperature_at_c(0.25))
    assert sample.gpu_memory_used_mb == pytest.approx(1024.0)
    assert sample.gpu_utilization_pct == 90.0
    assert sample.clock_event_reasons == pynvml.nvmlClocksEventReasonSwPowerCap


def test_older_gpu_falls_back_to_averaged_power_and_throttle_reasons(clock: ManualClock) -> None:
    gpu = FakeGpu(
        uuid="GPU-old",
        energy_counter=False,
        instant_power=False,
        clock_events_api=False,
        clock_event_reasons=lambda t: 0x40,
    )
    fake = FakeNvml([gpu], clock=clock)
    with NvmlSession.open(fake) as session:
        device = session.device(0)
        clock.sleep(3.0)
        sample = device.read_sample(0.0)
    assert not device.has_energy_counter
    assert not device.has_instant_power
    # The averaged figure is the mean over the last second, not the instant value.
    assert sample.gpu_power_w == pytest.approx(
        gpu.true_energy_j(3.0) - gpu.true_energy_j(2.0), abs=1e-3
    )
    assert sample.clock_event_reasons == 0x40
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] >= 2


def test_unsupported_query_is_probed_once_not_every_sample(clock: ManualClock) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-old", energy_counter=False)], clock=clock)
    with NvmlSession.open(fake) as session:
        device = session.device(0)
        for step in range(5):
            device.read_sample(float(step))
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 1


def test_a_lost_gpu_during_a_read_is_a_typed_error(fake_nvml: FakeNvml) -> None:
    with NvmlSession.open(fake_nvml) as session:
        device = session.device(1)
        fake_nvml.gpus[1].failures["nvmlDeviceGetFieldValues"] = pynvml.NVML_ERROR_GPU_IS_LOST
        with pytest.raises(
            GpuLostError, match=r"instant power of GPU 1 \(GPU-fa4e.*\) failed: GPU is lost"
        ):
            device.read_sample(0.0)


def test_gpu_info_for_a_consumer_gpu_leaves_unknowns_none(clock: ManualClock) -> None:
    gpu = FakeGpu(uuid="GPU-c", name="NVIDIA GeForce RTX 4090", ecc_enabled=None, mig_capable=False)
    with NvmlSession.open(FakeNvml([gpu], clock=clock)) as session:
        info = session.device(0).info()
    assert info.name == "NVIDIA GeForce RTX 4090"
    assert info.ecc_enabled is None
    assert info.mig_enabled is None
    assert info.compute_capability == "9.0"
    assert info.power_limit_w == 700.0


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("2,0", [2, 0]),
        ("1,1", [1]),
        ("0,7,1", [0]),  # CUDA stops at the first invalid entry
        ("GPU-fa4e0000-0000-0000-0000-000000000002", [2]),
    ],
)
def test_cuda_visible_devices_resolve_to_nvml_indices(
    visible: str | None, expected: list[int]
) -> None:
    with NvmlSession.open(FakeNvml.with_gpus(3)) as session:
        assert resolve_gpu_indices(session, visible) == expected


def test_ambiguous_uuid_prefix_and_mig_ids_are_errors() -> None:
    with NvmlSession.open(FakeNvml.with_gpus(3)) as session:
        with pytest.raises(EnergyError, match="'GPU-fa4e' matches 3 GPUs"):
            resolve_gpu_indices(session, "GPU-fa4e")
        with pytest.raises(NvmlNotSupportedError, match="MIG instance"):
            resolve_gpu_indices(session, "MIG-1234")

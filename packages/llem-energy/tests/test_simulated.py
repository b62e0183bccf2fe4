"""Simulated GPUs (LLEM_SIMULATED_GPUS): the switch, and GPUs whose power follows the load."""

import time

import pytest

from llem_energy import EnergyMeter, NvmlSession, simulated_gpu_count
from llem_energy.simulated import SimulatedGpu, simulated_nvml, simulated_uuid
from llem_schema import ConfigError, EnergyConfig


@pytest.mark.parametrize(("value", "count"), [(None, None), ("", None), (" 2 ", 2), ("16", 16)])
def test_the_switch_reads_how_many_gpus(value: str | None, count: int | None) -> None:
    environ = {} if value is None else {"LLEM_SIMULATED_GPUS": value}
    assert simulated_gpu_count(environ) == count


@pytest.mark.parametrize("value", ["0", "17", "two", "-1", "1.5"])
def test_a_bad_value_is_a_config_error_naming_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        simulated_gpu_count({"LLEM_SIMULATED_GPUS": value})
    assert str(caught.value) == (
        "LLEM_SIMULATED_GPUS must be a whole number from 1 to 16 (the GPUs to simulate), got "
        f"{value!r}; unset it to use the real GPUs"
    )


def test_nvml_opens_the_simulated_gpus_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_SIMULATED_GPUS", "3")
    with NvmlSession.open() as session:
        assert session.simulated == 3
        assert session.device_count() == 3
        assert session.driver_version() == "simulated"
        uuids = [session.device(i).uuid for i in range(3)]
    assert uuids == [simulated_uuid(i) for i in range(3)]
    # another host's simulated GPUs are other GPUs, as real ones are
    assert simulated_uuid(0, "node07") != simulated_uuid(0, "node08")
    assert simulated_uuid(0, "node07") == simulated_uuid(0, "node07")
    with EnergyMeter.create(EnergyConfig(source="nvml"), gpus=[1]) as meter:
        assert meter.simulated == 3
        assert [d.uuid for d in meter.devices] == [uuids[1]]


def test_an_explicit_nvml_module_is_never_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_SIMULATED_GPUS", "3")
    with NvmlSession.open(simulated_nvml(1)) as session:
        assert session.simulated is None  # the caller chose the module
        assert session.device_count() == 1


def _spin(seconds: float, gpu: SimulatedGpu, t0: float) -> None:
    """Busy for ``seconds`` of CPU time, the GPU read every 0.1 s of wall time as the sampler
    does (on a loaded machine the spin takes longer than ``seconds``, and a reading half a
    second after the last one would find the load too old to count)."""
    deadline = time.process_time() + seconds
    read_at = time.perf_counter() + 0.1
    while time.process_time() < deadline:
        if time.perf_counter() >= read_at:
            gpu.true_power_w(time.perf_counter() - t0)
            read_at = time.perf_counter() + 0.1


def test_power_follows_the_process_load_and_energy_is_its_integral() -> None:
    gpu = SimulatedGpu(uuid="GPU-sim")
    t0 = time.perf_counter()
    gpu.true_power_w(0.0)  # the first reading starts the bookkeeping
    time.sleep(0.2)
    idle_w = gpu.true_power_w(time.perf_counter() - t0)
    idle_utilization = gpu.utilization_at_pct(time.perf_counter() - t0)
    _spin(0.2, gpu, t0)
    busy_w = gpu.true_power_w(time.perf_counter() - t0)
    assert idle_w < gpu.idle_w + 0.3 * (gpu.peak_w - gpu.idle_w)
    # a busy loop is one core's work; a loaded machine may give it less of the core
    assert busy_w > gpu.idle_w + 0.3 * (gpu.peak_w - gpu.idle_w)
    assert busy_w > idle_w + 50.0
    assert idle_utilization < 30
    end_s = time.perf_counter() - t0
    energy_j = gpu.true_energy_j(end_s)
    # held power over each interval: the idle stretch and the busy one, nothing else
    assert gpu.idle_w * end_s <= energy_j <= gpu.peak_w * end_s
    assert energy_j == pytest.approx(idle_w * 0.2 + busy_w * (end_s - 0.2), rel=0.25)

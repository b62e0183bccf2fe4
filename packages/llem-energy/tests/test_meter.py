"""The two-call window end to end over fake NVML and fake RAPL, with a manual clock.

The sampler rate is set so low (0.001 Hz) that its thread never ticks during a test: the
samples are exactly the ones taken at start and stop, so every figure is deterministic.
"""

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pynvml
import pytest

from llem_energy import EnergyError, EnergyMeter, EnergySourceUnavailableError, process_tree
from llem_energy.testing import FakeGpu, FakeNvml, ManualClock, write_rapl_zone
from llem_schema import BaselineConfig, BaselineMeasurement, EnergyConfig, PowerSample

QUIET = EnergyConfig(sample_rate_hz=0.001)


def _meter(fake: FakeNvml, clock: ManualClock, rapl: Path, **config: object) -> EnergyMeter:
    return EnergyMeter.create(
        QUIET.model_copy(update=config), nvml=fake, clock=clock, rapl_root=rapl, environ={}
    )


def test_counter_energy_of_every_gpu_over_the_window(
    fake_nvml: FakeNvml, clock: ManualClock, no_rapl: Path
) -> None:
    clock.sleep(3.0)
    with _meter(fake_nvml, clock, no_rapl) as meter:
        assert meter.sources == ("nvml",)
        assert [d.uuid for d in meter.devices] == [g.uuid for g in fake_nvml.gpus]
        window = meter.start()
        clock.sleep(75.0)
        reading = window.stop()
    gpu = fake_nvml.gpus[0]
    expected_j = gpu.true_energy_j(78.0) - gpu.true_energy_j(3.0)
    assert [e.device_uuid for e in reading.energy] == [g.uuid for g in fake_nvml.gpus]
    for energy in reading.energy:
        assert energy.method == "counter"
        assert energy.energy_j == pytest.approx(expected_j, abs=0.002)
        # two samples, sine power: the trapezoid is close but not equal to the counter
        trapezoid = 75.0 * (gpu.true_power_w(3.0) + gpu.true_power_w(78.0)) / 2
        assert energy.integrated_energy_j == pytest.approx(trapezoid, abs=0.2)
    assert reading.duration_s == 75.0
    assert reading.sample_count == 4
    assert reading.total_energy_j == pytest.approx(2 * expected_j, abs=0.004)
    assert reading.throttle is not None
    assert reading.throttle.temperature_peak_c == round(gpu.temperature_at_c(78.0))
    assert reading.end_time >= reading.start_time
    assert fake_nvml.init_count == 0


def test_gpu_without_counter_uses_the_integral(clock: ManualClock, no_rapl: Path) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-old", energy_counter=False, power_swing_w=0.0)], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(100.0)
        reading = window.stop()
    (energy,) = reading.energy
    assert energy.method == "integrated"
    assert energy.counter_energy_j is None
    assert energy.energy_j == pytest.approx(300.0 * 100.0, rel=1e-4)


def test_a_miscalibrated_counter_is_a_mismatch_warning(clock: ManualClock, no_rapl: Path) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-a", counter_scale=1.3, power_swing_w=0.0)], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(90.0)
        reading = window.stop()
    (mismatch,) = [w for w in reading.warnings if w.code == "counter_mismatch"]
    assert "and the integral of instant power sampled at 0.0111 Hz" in mismatch.message
    assert "differ by 23%, more than 10%" in mismatch.message
    assert mismatch.figures["device"] == "GPU-a"
    assert reading.energy[0].energy_j == pytest.approx(1.3 * 300.0 * 90.0, rel=1e-4)


def test_window_warnings_and_the_prompt_count(
    fake_nvml: FakeNvml, clock: ManualClock, no_rapl: Path
) -> None:
    fake_nvml.gpus[1].persistence_mode = False
    fake_nvml.gpus[0].clock_event_reasons = lambda t: int(
        pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonSwThermalSlowdown
    )
    fake_nvml.gpus[0].temperature_rise_c_per_s = 1.0
    with _meter(fake_nvml, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(20.0)
        reading = window.stop()
    text = "\n".join(w.message for w in reading.warnings)
    assert [w.code for w in reading.warnings] == [
        "short_window",
        "no_baseline",
        "no_baseline",  # one per GPU
        "persistence_off",
        "thermal_drift",
        "throttled",
    ]
    assert "window was 20.0 s, shorter than 60 s" in text
    assert f"persistence mode is off on GPU {fake_nvml.gpus[1].uuid}" in text
    assert "slowed (software thermal) for 20.0 s of the 20.0 s window" in text
    assert "GPU 0 warmed by 20.0 °C" in text
    assert reading.throttle is not None
    assert reading.throttle.power_cap_s == pytest.approx(20.0)
    assert "few_prompts" not in [w.code for w in reading.warnings]
    assert "few_prompts" in [w.code for w in reading.warnings_with(prompt_count=8)]


def test_rapl_domains_join_the_gpus(
    fake_nvml: FakeNvml, clock: ManualClock, rapl_root: Path
) -> None:
    with EnergyMeter.create(
        QUIET, nvml=fake_nvml, clock=clock, rapl_root=rapl_root, environ={}
    ) as meter:
        assert meter.sources == ("nvml", "rapl")
        window = meter.start()
        write_rapl_zone(rapl_root, "intel-rapl:0", name="package-0", energy_uj=31_000_000)
        write_rapl_zone(rapl_root, "intel-rapl:0:1", name="dram", energy_uj=7_000_000)
        clock.sleep(60.0)
        reading = window.stop()
    rapl = {e.domain: e.energy_j for e in reading.energy if e.device_uuid.startswith("rapl:")}
    assert rapl == {"cpu_package": pytest.approx(30.0), "dram": pytest.approx(5.0)}


def test_a_process_that_leaves_the_host_to_another_meters_its_gpus_only(
    fake_nvml: FakeNvml, clock: ManualClock, rapl_root: Path
) -> None:
    # RAPL counts the whole host: of a run's processes on one host, one meters it
    with EnergyMeter.create(
        QUIET, nvml=fake_nvml, clock=clock, rapl_root=rapl_root, environ={}, host=False
    ) as meter:
        assert meter.sources == ("nvml",)
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    assert {e.domain for e in reading.energy} == {"gpu"}
    # with its model on no GPU it meters nothing, and that is nothing to warn about
    meter = EnergyMeter.create(
        QUIET, nvml=fake_nvml, clock=clock, rapl_root=rapl_root, environ={}, host=False, gpus=[]
    )
    assert (meter.sources, meter.unavailable_reason) == ((), None)
    window = meter.start()
    clock.sleep(61.0)
    reading = window.stop()
    assert reading.energy == []
    assert [w.code for w in reading.warnings if w.code in ("no_energy", "cpu_energy_only")] == []
    # but GPUs it could not meter are still said, with why
    meter = EnergyMeter.create(
        QUIET,
        nvml=FakeNvml(library_missing=True),
        clock=clock,
        rapl_root=rapl_root,
        environ={},
        host=False,
    )
    assert meter.unavailable_reason == "NVML cannot be used"
    assert meter.unavailable_details is not None
    assert "NVML_ERROR_LIBRARY_NOT_FOUND" in meter.unavailable_details


def test_auto_without_nvml_falls_back_to_rapl_with_a_warning(
    clock: ManualClock, rapl_root: Path
) -> None:
    meter = EnergyMeter.create(
        QUIET, nvml=FakeNvml(library_missing=True), clock=clock, rapl_root=rapl_root, environ={}
    )
    assert meter.sources == ("rapl",)
    window = meter.start()
    clock.sleep(61.0)
    reading = window.stop()
    assert reading.warnings[0].code == "cpu_energy_only"
    assert reading.warnings[0].message.startswith(
        "no GPU energy, CPU energy (RAPL) only: NVML: NVML initialisation"
    )
    assert [e.domain for e in reading.energy] == ["cpu_package", "dram"]


def test_auto_with_nothing_measures_no_energy_and_says_why(
    clock: ManualClock, no_rapl: Path
) -> None:
    meter = EnergyMeter.create(
        QUIET, nvml=FakeNvml(library_missing=True), clock=clock, rapl_root=no_rapl, environ={}
    )
    assert meter.sources == ()
    window = meter.start()
    clock.sleep(61.0)
    reading = window.stop()
    assert reading.energy == []
    assert reading.total_energy_j is None
    assert reading.samples == []
    (warning,) = [w for w in reading.warnings if w.code == "no_energy"]
    assert warning.message == (  # one short line; the whole story is in its figures
        "no energy measured: NVML cannot be used and RAPL is not exposed here (throughput and "
        "latency are); --energy none skips energy without this warning"
    )
    details = str(warning.figures["details"])
    assert "NVML_ERROR_LIBRARY_NOT_FOUND" in details
    assert "RAPL is not exposed here (a VM" in details
    assert "short_window" not in [w.code for w in reading.warnings]  # no energy to weigh on
    assert "rapl_unreadable" not in [w.code for w in reading.warnings]  # absent, not denied
    assert reading.duration_s == 61.0


def test_asking_for_a_missing_source_is_one_line_with_a_hint(
    clock: ManualClock, no_rapl: Path
) -> None:
    with pytest.raises(EnergySourceUnavailableError) as nvml_error:
        EnergyMeter.create(
            EnergyConfig(source="nvml"), nvml=FakeNvml(library_missing=True), environ={}
        )
    message = str(nvml_error.value)
    assert message.startswith("energy.source is 'nvml' but NVML cannot be used: ")
    assert "install the NVIDIA driver" in message
    assert "\n" not in message
    with pytest.raises(
        EnergySourceUnavailableError, match=r"energy\.source is 'rapl' but RAPL cannot be read: no "
    ):
        EnergyMeter.create(EnergyConfig(source="rapl"), rapl_root=no_rapl)
    with pytest.raises(EnergySourceUnavailableError, match="NVML found no GPU"):
        EnergyMeter.create(EnergyConfig(source="nvml"), nvml=FakeNvml([]), environ={})


def test_source_none(clock: ManualClock) -> None:
    meter = EnergyMeter.create(EnergyConfig(source="none"), clock=clock)
    window = meter.start()
    clock.sleep(1.0)
    reading = window.stop()
    assert reading.energy == []
    assert meter.unavailable_reason is None
    assert reading.warnings == []  # none was asked for: nothing is missing, no window to judge


def test_by_default_the_gpus_cuda_visible_devices_leaves_visible(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml.with_gpus(4, clock=clock)
    meter = EnergyMeter.create(
        QUIET, nvml=fake, clock=clock, rapl_root=no_rapl, environ={"CUDA_VISIBLE_DEVICES": "3,1"}
    )
    assert [d.index for d in meter.devices] == [3, 1]
    assert [
        d.index for d in EnergyMeter.create(QUIET, nvml=fake, gpus=[2], rapl_root=no_rapl).devices
    ] == [2]


def test_gpus_named_by_uuid_are_metered_whatever_order_nvml_numbers_them(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([FakeGpu(uuid=f"GPU-{name}") for name in "abcd"], clock=clock)

    def metered(
        gpus: Literal["all"] | Sequence[int | str], **environ: str
    ) -> list[tuple[str, int]]:
        meter = EnergyMeter.create(
            QUIET, nvml=fake, clock=clock, rapl_root=no_rapl, gpus=gpus, environ=environ
        )
        return [(d.uuid, d.index) for d in meter.devices]

    # a process that sees only GPU 1 as its cuda:0 names it by UUID: the numbering is moot
    assert metered(["GPU-b"], CUDA_VISIBLE_DEVICES="1") == [("GPU-b", 1)]
    assert metered(["GPU-c", "GPU-a"]) == [("GPU-c", 2), ("GPU-a", 0)]
    assert metered(["GPU-a", 0, "GPU-a"]) == [("GPU-a", 0)]  # each GPU once
    assert metered("all", CUDA_VISIBLE_DEVICES="2") == [
        (f"GPU-{n}", i) for i, n in enumerate("abcd")
    ]


def test_a_run_on_no_gpu_meters_none_and_does_not_open_nvml(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml.with_gpus(2, clock=clock)
    meter = EnergyMeter.create(QUIET, nvml=fake, clock=clock, rapl_root=no_rapl, gpus=[])
    assert meter.devices == []
    assert fake.calls["nvmlInit"] == 0
    assert meter.unavailable_reason == "the model is on no GPU and RAPL is not exposed here"
    assert meter.unavailable_details == (
        "NVML: the model is on no GPU, so no GPU is metered; "
        f"RAPL: no {no_rapl}: RAPL is not exposed here (a VM, a container without "
        "/sys/class/powercap, or a CPU without RAPL); set energy.source to 'nvml' or 'none'"
    )
    with pytest.raises(EnergySourceUnavailableError) as caught:
        EnergyMeter.create(EnergyConfig(source="nvml"), nvml=fake, rapl_root=no_rapl, gpus=[])
    assert str(caught.value) == (
        "energy.source is 'nvml' but the model was placed on no GPU; name the GPUs to meter "
        "in energy.devices, or set energy.source to 'rapl' or 'none'"
    )


def test_a_uuid_no_gpu_has_is_named(clock: ManualClock, no_rapl: Path) -> None:
    fake = FakeNvml.with_gpus(1, clock=clock)
    with pytest.raises(EnergySourceUnavailableError) as caught:
        EnergyMeter.create(
            EnergyConfig(source="nvml"), nvml=fake, rapl_root=no_rapl, gpus=["GPU-gone"]
        )
    assert str(caught.value) == (
        "energy.source is 'nvml' but NVML cannot be used: no GPU with UUID GPU-gone on this "
        "host (`nvidia-smi -L` lists them)"
    )
    assert fake.init_count == 0  # NVML was shut down again


def test_baseline_fresh_then_cached_and_adjusted_energy(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    idle = FakeGpu(uuid="GPU-a", power_w=80.0, power_swing_w=0.0, utilization_pct=0)
    fake = FakeNvml([idle], clock=clock)
    config = BaselineConfig(duration_s=10.0, cache_ttl_s=3600.0)
    wall = [1_700_000_000.0]
    with _meter(fake, clock, no_rapl) as meter:
        fresh = meter.measure_baseline(
            config, cache_dir=tmp_path, sleep=clock.sleep, now=lambda: wall[0]
        )
        assert fresh["GPU-a"].method == "fresh"
        assert fresh["GPU-a"].power_w == pytest.approx(80.0, abs=1e-3)
        assert fresh["GPU-a"].duration_s == 10.0
        assert fresh["GPU-a"].state == "device synchronised and idle"
        assert fresh["GPU-a"].problems == []
        assert fresh["GPU-a"].attempts == 1
        assert fresh["GPU-a"].temperature_c is not None
        fake.gpus[0].power_w = 300.0
        window = meter.start()
        clock.sleep(100.0)
        reading = window.stop()
    assert reading.energy[0].baseline == fresh["GPU-a"]
    assert reading.adjusted_energy_j == pytest.approx(300.0 * 100 - 80.0 * 100, abs=0.2)
    assert "no_baseline" not in [w.code for w in reading.warnings]

    wall[0] += 600.0  # another process, ten minutes later, reuses the figure
    with _meter(fake, clock, no_rapl) as other:
        calls = fake.calls["nvmlDeviceGetTotalEnergyConsumption"]
        cached = other.measure_baseline(
            config, cache_dir=tmp_path, sleep=clock.sleep, now=lambda: wall[0]
        )
        assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == calls  # nothing measured
    assert cached["GPU-a"].method == "cached"
    assert cached["GPU-a"].age_s == 600.0


def test_baseline_unavailable_without_energy_and_disabled(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    meter = EnergyMeter.create(EnergyConfig(source="none"), clock=clock)
    assert (
        meter.measure_baseline(
            BaselineConfig(duration_s=1.0), cache_dir=tmp_path, sleep=clock.sleep
        )
        == {}
    )
    fake = FakeNvml.with_gpus(1, clock=clock)
    gpu_meter = _meter(fake, clock, no_rapl)
    assert gpu_meter.measure_baseline(BaselineConfig(enabled=False), cache_dir=tmp_path) == {}
    fake.gpus[0].failures["nvmlDeviceGetTotalEnergyConsumption"] = pynvml.NVML_ERROR_GPU_IS_LOST
    fake.gpus[0].failures["nvmlDeviceGetFieldValues"] = pynvml.NVML_ERROR_GPU_IS_LOST
    result = gpu_meter.measure_baseline(
        BaselineConfig(duration_s=1.0), cache_dir=tmp_path, sleep=clock.sleep
    )
    assert result[fake.gpus[0].uuid].method == "unavailable"


def test_counter_failure_mid_window_falls_back_to_the_integral(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([FakeGpu(uuid="GPU-a", power_swing_w=0.0)], clock=clock)
    meter = _meter(fake, clock, no_rapl)
    window = meter.start()
    clock.sleep(70.0)
    fake.gpus[0].failures["nvmlDeviceGetTotalEnergyConsumption"] = pynvml.NVML_ERROR_UNKNOWN
    reading = window.stop()
    assert reading.energy[0].method == "integrated"
    assert math.isclose(reading.energy[0].energy_j, 300.0 * 70.0, rel_tol=1e-4)
    assert reading.warnings[0].code == "counter_unreadable"
    assert reading.warnings[0].message.startswith(
        "GPU GPU-a: energy counter unreadable at window end (NVML energy counter"
    )


def test_a_window_closes_once_and_one_is_open_at_a_time(
    fake_nvml: FakeNvml, clock: ManualClock, no_rapl: Path
) -> None:
    meter = _meter(fake_nvml, clock, no_rapl)
    window = meter.start()
    with pytest.raises(EnergyError, match="already open"):
        meter.start()
    window.stop()
    with pytest.raises(EnergyError, match="already closed"):
        window.stop()
    meter.start().stop()


def test_environment_describes_the_measured_gpus(clock: ManualClock, no_rapl: Path) -> None:
    fake = FakeNvml.with_gpus(3, clock=clock)
    meter = EnergyMeter.create(QUIET, nvml=fake, gpus=[1], rapl_root=no_rapl, clock=clock)
    snapshot = meter.environment(packages=["pydantic"])
    assert [g.index for g in snapshot.gpus] == [1]
    assert snapshot.driver_version == "550.54.15"
    assert EnergyMeter.create(EnergyConfig(source="none")).environment(packages=[]).gpus == []


def test_each_gpus_energy_says_what_power_was_read_and_how_often(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml(
        [FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b", instant_power=False)], clock=clock
    )
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(2.0)
        reading = window.stop()
    readings = {e.device_uuid: (e.power_reading, e.power_scope) for e in reading.energy}
    assert readings == {"GPU-a": ("instant", "gpu"), "GPU-b": ("averaged", "gpu")}
    # a manual clock: the sampler thread took none, start() and stop() one each
    assert [e.sample_rate_hz for e in reading.energy] == [pytest.approx(0.5)] * 2
    assert [e.sample_gaps for e in reading.energy] == [0, 0]  # the period is 1000 s here


def test_rapl_denied_under_auto_is_a_warning_saying_how_to_grant_access(
    fake_nvml: FakeNvml, clock: ManualClock, rapl_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the kernel answers a user who is not root since Linux 5.10 (the tests may run as
    # root, to whom a file mode denies nothing, so the denial is made at the read).
    read_text = Path.read_text

    def denied(path: Path, *args: Any, **kwargs: Any) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    with EnergyMeter.create(
        QUIET, nvml=fake_nvml, clock=clock, rapl_root=rapl_root, environ={}
    ) as meter:
        assert meter.sources == ("nvml",)
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    (refused,) = [w for w in reading.warnings if w.code == "rapl_unreadable"]
    assert "only root may read RAPL counters" in refused.message
    assert "sudo chmod a+r" in refused.message


def _idle_gpu(**kw: Any) -> FakeGpu:
    settings: dict[str, Any] = {"uuid": "GPU-a", "power_w": 80.0, "utilization_pct": 0}
    return FakeGpu(**(settings | kw))


def _baseline(
    fake: FakeNvml, clock: ManualClock, no_rapl: Path, cache: Path, **kw: Any
) -> dict[str, BaselineMeasurement]:
    with _meter(fake, clock, no_rapl) as meter:
        return meter.measure_baseline(
            BaselineConfig(duration_s=10.0, cache_ttl_s=3600.0),
            cache_dir=cache,
            sleep=clock.sleep,
            **kw,
        )


def test_a_busy_gpu_at_baseline_is_measured_again_then_warned_and_not_cached(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    busy = FakeGpu(uuid="GPU-a", power_w=300.0, utilization_pct=90)
    fake = FakeNvml([busy], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        before = fake.calls["nvmlDeviceGetTotalEnergyConsumption"]
        found = meter.measure_baseline(
            BaselineConfig(duration_s=10.0), cache_dir=tmp_path, sleep=clock.sleep
        )
        measured = fake.calls["nvmlDeviceGetTotalEnergyConsumption"] - before
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    assert found["GPU-a"].problems == ["utilisation up to 90 %"]
    assert found["GPU-a"].attempts == 2
    assert found["GPU-a"].power_w == pytest.approx(300.0, rel=0.05)  # kept, with its problems
    assert measured >= 4  # two windows, each reading the counter at start and end
    (warned,) = [w for w in reading.warnings if w.code == "baseline_not_idle"]
    assert "did not look idle while its baseline was measured, twice (utilisation up to 90 %)" in (
        warned.message
    )
    assert list(tmp_path.glob("*.json")) == []  # never cached


def test_a_foreign_process_or_a_cooling_gpu_is_not_idle(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    foreign = FakeNvml([_idle_gpu(compute_pids=[os.getpid(), 999_999])], clock=clock)
    (problem,) = _baseline(foreign, clock, no_rapl, tmp_path)["GPU-a"].problems
    assert problem == "compute processes not of this run (PIDs 999999)"  # its own is not
    cooling = FakeNvml([_idle_gpu(temperature_rise_c_per_s=-1.0)], clock=clock)
    (problem,) = _baseline(cooling, clock, no_rapl, tmp_path / "c")["GPU-a"].problems
    assert problem == "cooling by 10.0 °C"


def test_a_cached_baseline_is_reused_only_under_the_same_state_limit_and_driver(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    fake = FakeNvml([_idle_gpu()], clock=clock)
    assert _baseline(fake, clock, no_rapl, tmp_path)["GPU-a"].method == "fresh"
    assert _baseline(fake, clock, no_rapl, tmp_path)["GPU-a"].method == "cached"
    other_state = _baseline(fake, clock, no_rapl, tmp_path, state="model unloaded")
    assert other_state["GPU-a"].method == "fresh"
    fake.gpus[0].power_limit_w = 500.0
    assert _baseline(fake, clock, no_rapl, tmp_path)["GPU-a"].method == "fresh"
    fake.driver_version = "560.28.03"
    assert _baseline(fake, clock, no_rapl, tmp_path)["GPU-a"].method == "fresh"
    assert _baseline(fake, clock, no_rapl, tmp_path)["GPU-a"].method == "cached"


def test_window_start_and_end_states_name_foreign_processes(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([_idle_gpu(compute_pids=[os.getpid()])], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        fake.gpus[0].compute_pids.append(4242)  # something else starts on the GPU
        fake.gpus[0].sm_clock_mhz = 1755
        clock.sleep(61.0)
        reading = window.stop()
    environment = reading.environment
    assert environment is not None
    assert environment.driver_version == "550.54.15"
    (start,), (end,) = environment.at_start, environment.at_end
    assert (start.foreign_pids, end.foreign_pids) == ([], [4242])
    assert (start.sm_clock_mhz, end.sm_clock_mhz) == (1980.0, 1755.0)
    assert (start.power_limit_w, start.default_power_limit_w, start.pstate) == (700.0, 700.0, 0)
    (foreign,) = [w for w in reading.warnings if w.code == "foreign_process"]
    assert "(PIDs 4242)" in foreign.message


def test_the_process_tree_holds_this_process_and_its_children(tmp_path: Path) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        assert {os.getpid(), child.pid} <= tree
        assert os.getppid() not in tree
        assert process_tree(os.getpid(), proc=tmp_path / "no-proc") == {os.getpid()}
    finally:
        child.kill()
        child.wait()


def test_a_gpu_with_module_power_only_reads_it_and_says_so(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([_idle_gpu(module_power_only=True, power_swing_w=0.0)], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    (energy,) = reading.energy
    assert (energy.power_reading, energy.power_scope) == ("instant", "module")
    assert energy.integrated_energy_j == pytest.approx(80.0 * 61.0)
    (module,) = [w for w in reading.warnings if w.code == "module_power"]
    assert "GPU GPU-a's own power cannot be read, only its module's" in module.message


def test_nvmls_clock_event_counters_give_the_throttle_times_where_the_driver_counts(
    clock: ManualClock, no_rapl: Path
) -> None:
    """A thermal slowdown of 0.05 s falls between two 10 Hz samples; the counters see it."""
    power_cap, hw_thermal = 74, 270  # the NVML field ids
    gpu = _idle_gpu(event_counters=True, event_ns={power_cap: 10**12, hw_thermal: 5 * 10**9})
    fake = FakeNvml([gpu], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(61.0)
        gpu.event_ns = {power_cap: 10**12 + 30 * 10**9, hw_thermal: 5 * 10**9 + 50_000_000}
        reading = window.stop()
    throttle = reading.throttle
    assert throttle is not None
    assert throttle.source == "counters"
    assert throttle.power_cap_s == pytest.approx(30.0)
    assert throttle.slowdown_s == pytest.approx(0.05)
    assert (throttle.power_cap, throttle.hw_thermal, throttle.sw_thermal) == (True, True, False)
    (slowed,) = [w for w in reading.warnings if w.code == "throttled"]
    assert "slowed (hardware thermal) for 0.1 s of the 61.0 s window" in slowed.message


def test_without_counters_the_throttle_times_come_from_the_samples(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([_idle_gpu()], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    assert reading.throttle is not None
    assert reading.throttle.source == "samples"
    assert not reading.throttle.detected


def test_a_gpu_with_mig_enabled_is_recorded_so_and_warned_about(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([_idle_gpu(mig_enabled=True), _idle_gpu(uuid="GPU-b")], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        assert [d.mig for d in meter.devices] == [True, False]  # the GPU's mode
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    (mig,) = [w for w in reading.warnings if w.code == "mig_enabled"]
    assert mig.figures["device"] == "GPU-a"


def test_a_gpu_starting_its_run_warm_is_a_start_temperature_warning(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    gpu = _idle_gpu(temperature_c=32.0, temperature_rise_c_per_s=0.0)
    fake = FakeNvml([gpu], clock=clock)
    cold = BaselineConfig(duration_s=10.0, cache_ttl_s=0.0)  # measured every time
    with _meter(fake, clock, no_rapl) as meter:
        meter.measure_baseline(cold, cache_dir=tmp_path, sleep=clock.sleep)  # idle: 32 °C
    gpu.temperature_c = 52.0  # the next run begins on a GPU still warm from the last
    with _meter(fake, clock, no_rapl) as meter:
        found = meter.measure_baseline(cold, cache_dir=tmp_path, sleep=clock.sleep)
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    assert found["GPU-a"].temperature_c == pytest.approx(52.0)
    (warm,) = [w for w in reading.warnings if w.code == "start_temperature"]
    assert "GPU GPU-a started the run at 52 °C, 20 °C above its idle temperature of 32 °C" in (
        warm.message
    )
    gpu.temperature_c = 45.0  # 13 °C above idle: within the limit
    with _meter(fake, clock, no_rapl) as meter:
        meter.measure_baseline(cold, cache_dir=tmp_path, sleep=clock.sleep)
        assert "start_temperature" not in [w.code for w in meter.baseline_warnings]


def test_where_the_runs_processes_cannot_be_told_none_is_called_foreign(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([_idle_gpu(compute_pids=[4242])], clock=clock)
    with EnergyMeter.create(
        QUIET, nvml=fake, clock=clock, rapl_root=no_rapl, environ={}, own_pids=lambda: None
    ) as meter:
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    assert reading.environment is not None
    (start,) = reading.environment.at_start
    assert (start.compute_pids, start.foreign_pids) == ([4242], None)
    assert "foreign_process" not in [w.code for w in reading.warnings]


def test_the_power_limit_is_judged_on_power_over_a_second_not_on_a_spike() -> None:
    from llem_energy.meter import _peaks_w

    def row(t: float, w: float) -> PowerSample:
        return PowerSample(timestamp_s=t, gpu_index=0, gpu_power_w=w, gpu_temperature_c=None)

    steady = [row(i / 10, 650.0) for i in range(30)]
    spike = [*steady[:15], row(1.5, 900.0), *steady[16:]]  # one 100 ms reading above 700 W
    assert _peaks_w(spike, {0: "GPU-a"})["GPU-a"] < 700.0
    over = [row(i / 10, 800.0 if 10 <= i < 22 else 650.0) for i in range(30)]
    assert _peaks_w(over, {0: "GPU-a"})["GPU-a"] == pytest.approx(800.0)  # a whole second
    short = [row(0.0, 600.0), row(0.1, 620.0)]  # a window under a second: its mean
    assert _peaks_w(short, {0: "GPU-a"})["GPU-a"] == pytest.approx(610.0)


def test_a_driver_that_refuses_the_field_values_still_meters_the_gpu(
    clock: ManualClock, no_rapl: Path
) -> None:
    gpu = _idle_gpu(power_swing_w=0.0)
    gpu.failures["nvmlDeviceGetFieldValues"] = pynvml.NVML_ERROR_INVALID_ARGUMENT
    fake = FakeNvml([gpu], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    (energy,) = reading.energy
    assert (energy.method, energy.power_reading) == ("counter", "averaged")
    assert energy.energy_j == pytest.approx(80.0 * 61.0, rel=1e-3)


def test_a_later_baseline_replaces_what_an_earlier_one_warned(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    gpu = _idle_gpu(utilization_pct=90)
    fake = FakeNvml([gpu], clock=clock)
    config = BaselineConfig(duration_s=10.0, cache_ttl_s=0.0)
    with _meter(fake, clock, no_rapl) as meter:
        meter.measure_baseline(config, cache_dir=tmp_path, sleep=clock.sleep)
        assert [w.code for w in meter.baseline_warnings] == ["baseline_not_idle"]
        gpu.utilization_pct = 0
        meter.measure_baseline(config, cache_dir=tmp_path, sleep=clock.sleep)
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
    assert meter.baseline_warnings == []
    assert "baseline_not_idle" not in [w.code for w in reading.warnings]


def test_a_burst_at_the_window_start_is_judged_over_a_whole_second() -> None:
    from llem_energy.meter import _peaks_w

    def row(t: float, w: float) -> PowerSample:
        return PowerSample(timestamp_s=t, gpu_index=0, gpu_power_w=w, gpu_temperature_c=None)

    burst = [row(i / 10, 900.0 if i < 6 else 600.0) for i in range(30)]  # 0.6 s of prefill
    assert _peaks_w(burst, {0: "GPU-a"})["GPU-a"] == pytest.approx((6 * 900 + 5 * 600) / 11)


def test_a_reading_the_columns_cannot_hold_is_a_read_error_and_the_meter_goes_on(
    clock: ManualClock, no_rapl: Path
) -> None:
    fake = FakeNvml([_idle_gpu()], clock=clock)
    with _meter(fake, clock, no_rapl) as meter:
        fake.gpus[0].clock_event_reasons = lambda t: -1  # no mask is negative
        window = meter.start()
        clock.sleep(61.0)
        reading = window.stop()
        assert "sample_read_errors" in [w.code for w in reading.warnings]
        fake.gpus[0].clock_event_reasons = lambda t: 0
        again = meter.start()  # the meter is not left with a window open
        clock.sleep(1.0)
        assert again.stop().sample_count == 2


def test_a_warm_start_is_warned_about_when_the_baseline_comes_from_the_cache(
    clock: ManualClock, no_rapl: Path, tmp_path: Path
) -> None:
    gpu = _idle_gpu(temperature_c=32.0, temperature_rise_c_per_s=0.0)
    fake = FakeNvml([gpu], clock=clock)
    cached = BaselineConfig(duration_s=10.0, cache_ttl_s=3600.0)
    with _meter(fake, clock, no_rapl) as meter:
        meter.measure_baseline(cached, cache_dir=tmp_path, sleep=clock.sleep)
    gpu.temperature_c = 75.0  # the next run of a study, straight after the last
    with _meter(fake, clock, no_rapl) as meter:
        found = meter.measure_baseline(cached, cache_dir=tmp_path, sleep=clock.sleep)
        assert found["GPU-a"].method == "cached"
        (warm,) = meter.baseline_warnings
    assert warm.code == "start_temperature"
    assert "started the run at 75 °C, 43 °C above its idle temperature of 32 °C" in warm.message

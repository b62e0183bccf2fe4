"""Every measurement warning fires on what it should, says what to do, and not otherwise."""

import pytest

from llem_energy import MeasurementFacts, SampleGap, measurement_warnings, warning
from llem_schema import WARNING_CODES, BaselineMeasurement, DeviceEnergy, ThermalThrottleInfo

GOOD_BASELINE = BaselineMeasurement(method="fresh", power_w=60.0, age_s=0.0, duration_s=15.0)


def _gpu(
    counter: float | None = 30_000.0, integrated: float | None = 30_000.0, **kw: object
) -> DeviceEnergy:
    method = "counter" if counter is not None else "integrated"
    value = counter if counter is not None else integrated
    return DeviceEnergy.model_validate(
        {
            "device_uuid": "GPU-a",
            "domain": "gpu",
            "energy_j": value,
            "method": method,
            "counter_energy_j": counter,
            "integrated_energy_j": integrated,
            "baseline": GOOD_BASELINE,
        }
        | kw
    )


def _clean(**kw: object) -> MeasurementFacts:
    base: dict[str, object] = {
        "duration_s": 120.0,
        "prompt_count": 100,
        "energy": [_gpu()],
        "sample_period_s": 0.1,
        "persistence_mode": {"GPU-a": True},
        "ecc_enabled": {"GPU-a": True},
        "counter_changes": {"GPU-a": 1000},
        "counter_update_period_s": {"GPU-a": 0.1},
        "thermal_drift_c": {0: 4.0},
    }
    return MeasurementFacts(**(base | kw))  # type: ignore[arg-type]


def _one(facts: MeasurementFacts, code: str) -> str:
    """The message of the one warning ``facts`` call for, which must be of ``code``."""
    warnings = measurement_warnings(facts)
    assert [w.code for w in warnings] == [code], warnings
    assert code in WARNING_CODES
    return warnings[0].message


def test_a_clean_measurement_has_no_warnings() -> None:
    assert measurement_warnings(_clean()) == []


def test_short_window() -> None:
    text = _one(_clean(duration_s=12.5), "short_window")
    assert "window was 12.5 s, shorter than 60 s" in text
    assert "at least a minute" in text
    (found,) = measurement_warnings(_clean(duration_s=12.5))
    assert found.figures == {"duration_s": 12.5, "min_window_s": 60.0}


def test_thermal_drift() -> None:
    assert "GPU 0 warmed by 12.0 °C" in _one(_clean(thermal_drift_c={0: 12.0}), "thermal_drift")
    assert measurement_warnings(_clean(thermal_drift_c={0: 10.0})) == []


def test_persistence_and_ecc_off_but_not_unknown() -> None:
    assert "nvidia-smi -pm 1" in _one(_clean(persistence_mode={"GPU-a": False}), "persistence_off")
    assert "nvidia-smi -e 1" in _one(_clean(ecc_enabled={"GPU-a": False}), "ecc_off")
    assert (
        measurement_warnings(_clean(ecc_enabled={"GPU-a": None}, persistence_mode={"GPU-a": None}))
        == []
    )


def test_mig_enabled_says_the_counter_is_the_whole_gpus() -> None:
    text = _one(_clean(mig_enabled={"GPU-a": True}), "mig_enabled")
    assert "MIG is enabled on GPU GPU-a" in text
    assert "the whole GPU's" in text
    assert measurement_warnings(_clean(mig_enabled={"GPU-a": False, "GPU-b": None})) == []


def test_simulated_gpus_are_never_a_measurement() -> None:
    text = _one(_clean(simulated=2), "simulated_gpus")
    assert "LLEM_SIMULATED_GPUS=2" in text
    assert "made up" in text


def test_few_prompts() -> None:
    assert "only 29 prompts" in _one(_clean(prompt_count=29), "few_prompts")
    assert measurement_warnings(_clean(prompt_count=30)) == []


def test_no_baseline() -> None:
    text = _one(_clean(energy=[_gpu(baseline=None)]), "no_baseline")
    assert text.startswith("no idle baseline for GPU-a")
    assert "baseline.enabled" in text
    unavailable = BaselineMeasurement(method="unavailable", power_w=None)
    assert "no idle baseline" in _one(_clean(energy=[_gpu(baseline=unavailable)]), "no_baseline")


def test_a_thermal_slowdown_is_warned_about_with_its_time() -> None:
    throttle = ThermalThrottleInfo(
        detected=True, power_cap=True, hw_thermal=True, throttled_s=3.25, slowdown_s=1.25
    )
    text = _one(_clean(throttle=throttle), "throttled")
    assert "slowed (hardware thermal) for 1.2 s of the 120.0 s window" in text
    assert "cooling" in text


def test_hardware_slowdown_alone_is_warned_about() -> None:
    throttle = ThermalThrottleInfo(detected=True, hw_slowdown=True, throttled_s=2.0, slowdown_s=2.0)
    assert "(hardware slowdown)" in _one(_clean(throttle=throttle), "throttled")


def test_the_software_power_cap_alone_is_information_not_a_warning() -> None:
    throttle = ThermalThrottleInfo(
        detected=True, power_cap=True, throttled_s=100.0, slowdown_s=0.0, power_cap_s=100.0
    )
    assert measurement_warnings(_clean(throttle=throttle)) == []


def test_sampler_gaps() -> None:
    gaps = [SampleGap(0, 1.0, 0.35), SampleGap(0, 5.0, 0.5)]
    text = _one(_clean(gaps=gaps), "sample_gaps")
    assert "2 gap(s) on GPU 0, the longest 0.500 s" in text
    assert "sample_rate_hz" in text


def test_counter_vs_integral_mismatch_says_what_was_compared() -> None:
    assert measurement_warnings(_clean(energy=[_gpu(30_000.0, 27_600.0)])) == []
    facts = _clean(energy=[_gpu(30_000.0, 25_500.0)], power_reading={"GPU-a": "averaged"})
    text = _one(facts, "counter_mismatch")
    assert (
        "the energy counter (30000.0 J) and the integral of averaged power sampled at 10 Hz "
        "(25500.0 J) differ by 15%, more than 10%"
    ) in text
    assert (
        measurement_warnings(_clean(energy=[_gpu(30_000.0, 25_500.0)], mismatch_tolerance=0.2))
        == []
    )


def test_window_shorter_than_counter_update() -> None:
    text = _one(_clean(duration_s=120.0, counter_changes={"GPU-a": 1}), "counter_coarse")
    assert "too short for the energy counter (it changed 1 time(s)" in text
    both = measurement_warnings(_clean(duration_s=0.05, counter_update_period_s={"GPU-a": 0.1}))
    assert [w.code for w in both] == ["short_window", "counter_coarse"]
    assert "update period ~0.100 s" in both[1].message


def test_no_energy_source_and_extras_come_first() -> None:
    extra = warning("cpu_energy_only", "from the meter")
    warnings = measurement_warnings(
        _clean(
            energy=[],
            energy_unavailable_reason="NVML cannot be used",
            energy_unavailable_details="NVML: no driver",
            extra=[extra],
        )
    )
    assert [(w.code, w.message, w.figures) for w in warnings] == [
        ("cpu_energy_only", "from the meter", {}),
        (
            "no_energy",
            "no energy measured: NVML cannot be used (throughput and latency are); "
            "--energy none skips energy without this warning",
            {"details": "NVML: no driver"},
        ),
    ]


def test_without_energy_a_short_window_is_no_warning() -> None:
    """The window's length weighs on energy figures only: none measured (--energy none, or a
    process that leaves the host's energy to another and has no GPU), nothing to warn about."""
    assert [w.code for w in measurement_warnings(_clean(duration_s=2.0))] == ["short_window"]
    assert measurement_warnings(_clean(duration_s=2.0, energy=[])) == []
    missing = _clean(duration_s=2.0, energy=[], energy_unavailable_reason="no GPU")
    assert [w.code for w in measurement_warnings(missing)] == ["no_energy"]


def test_read_errors() -> None:
    assert "3 sample read(s) failed on GPU GPU-a (first: boom)" in _one(
        _clean(read_errors={"GPU-a": (3, "boom")}), "sample_read_errors"
    )


def test_a_warning_needs_a_documented_code() -> None:
    with pytest.raises(ValueError, match="'no_such_code' is not a documented warning code"):
        warning("no_such_code", "text")


def test_machine_warnings_judge_the_machine_not_a_window() -> None:
    from llem_energy import machine_warnings

    facts = MeasurementFacts(
        duration_s=0.0,
        energy_unavailable_reason="no NVML",
        persistence_mode={"GPU-a": False, "GPU-b": True},
        ecc_enabled={"GPU-a": True, "GPU-b": False},
        extra=[warning("cpu_energy_only", "CPU energy only")],
    )
    warnings = machine_warnings(facts)
    assert [w.code for w in warnings] == [
        "cpu_energy_only",
        "no_energy",
        "persistence_off",
        "ecc_off",
    ]
    assert warnings[1].message.startswith("no energy measured: no NVML")
    assert warnings[2].message.startswith("persistence mode is off on GPU GPU-a")
    assert warnings[3].message.startswith("ECC is off on GPU GPU-b")


def test_a_foreign_compute_process_is_named_with_its_pids() -> None:
    text = _one(_clean(foreign_pids={"GPU-a": [4242, 4343]}), "foreign_process")
    assert "GPU GPU-a ran compute processes that are not this run's (PIDs 4242, 4343)" in text
    assert "container" not in text
    inside = _one(_clean(foreign_pids={"GPU-a": [4242]}, in_container=True), "foreign_process")
    assert "inside a container NVML gives the host's PIDs" in inside
    assert measurement_warnings(_clean(foreign_pids={"GPU-a": []})) == []


def test_mean_power_below_idle_is_out_of_bounds() -> None:
    # 30,000 J over 600 s is 50 W, under the 60 W idle baseline less 10 %
    text = _one(_clean(duration_s=600.0), "power_out_of_bounds")
    assert "drew 50.0 W on average in the window, below its idle baseline of 60.0 W" in text
    assert measurement_warnings(_clean(duration_s=540.0)) == []  # 55.6 W: within 10 %


def test_a_reading_above_the_power_limit_is_out_of_bounds() -> None:
    facts = _clean(power_limit_w={"GPU-a": 700.0}, peak_power_w={"GPU-a": 800.0})
    assert "read 800.0 W, above its 700.0 W power limit" in _one(facts, "power_out_of_bounds")
    fine = _clean(power_limit_w={"GPU-a": 700.0}, peak_power_w={"GPU-a": 760.0})
    assert measurement_warnings(fine) == []

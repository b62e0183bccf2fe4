"""Every measurement warning fires on what it should, says what to do, and not otherwise."""

from llem_energy import MeasurementFacts, SampleGap, measurement_warnings
from llem_schema import BaselineMeasurement, DeviceEnergy, ThermalThrottleInfo

GOOD_BASELINE = BaselineMeasurement(method="fresh", power_w=60.0, age_s=0.0, duration_s=15.0)


def _gpu(
    counter: float | None = 1000.0, integrated: float | None = 1000.0, **kw: object
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


def _one(facts: MeasurementFacts) -> str:
    warnings = measurement_warnings(facts)
    assert len(warnings) == 1, warnings
    return warnings[0]


def test_a_clean_measurement_has_no_warnings() -> None:
    assert measurement_warnings(_clean()) == []


def test_short_window() -> None:
    text = _one(_clean(duration_s=12.5))
    assert "window was 12.5 s, shorter than 60 s" in text
    assert "at least a minute" in text


def test_thermal_drift() -> None:
    assert "GPU 0 warmed by 12.0 °C" in _one(_clean(thermal_drift_c={0: 12.0}))
    assert measurement_warnings(_clean(thermal_drift_c={0: 10.0})) == []


def test_persistence_and_ecc_off_but_not_unknown() -> None:
    assert "nvidia-smi -pm 1" in _one(_clean(persistence_mode={"GPU-a": False}))
    assert "nvidia-smi -e 1" in _one(_clean(ecc_enabled={"GPU-a": False}))
    assert (
        measurement_warnings(_clean(ecc_enabled={"GPU-a": None}, persistence_mode={"GPU-a": None}))
        == []
    )


def test_few_prompts() -> None:
    assert "only 29 prompts" in _one(_clean(prompt_count=29))
    assert measurement_warnings(_clean(prompt_count=30)) == []


def test_no_baseline() -> None:
    text = _one(_clean(energy=[_gpu(baseline=None)]))
    assert text.startswith("no idle baseline for GPU-a")
    assert "baseline.enabled" in text
    unavailable = BaselineMeasurement(method="unavailable", power_w=None)
    assert "no idle baseline" in _one(_clean(energy=[_gpu(baseline=unavailable)]))


def test_throttling() -> None:
    throttle = ThermalThrottleInfo(detected=True, power_cap=True, hw_thermal=True, throttled_s=3.25)
    text = _one(_clean(throttle=throttle))
    assert "throttled (hardware thermal, power cap) for 3.2 s" in text
    assert "cooling" in text


def test_sampler_gaps() -> None:
    gaps = [SampleGap(0, 1.0, 0.35), SampleGap(0, 5.0, 0.5)]
    text = _one(_clean(gaps=gaps))
    assert "2 gap(s) on GPU 0, the longest 0.500 s" in text
    assert "sample_rate_hz" in text


def test_counter_vs_integral_mismatch() -> None:
    assert measurement_warnings(_clean(energy=[_gpu(1000.0, 920.0)])) == []
    text = _one(_clean(energy=[_gpu(1000.0, 850.0)]))
    assert "(1000.0 J) and integrated power (850.0 J) differ by 15%, more than 10%" in text
    assert measurement_warnings(_clean(energy=[_gpu(1000.0, 850.0)], mismatch_tolerance=0.2)) == []


def test_window_shorter_than_counter_update() -> None:
    text = _one(_clean(duration_s=120.0, counter_changes={"GPU-a": 1}))
    assert "too short for the energy counter (it changed 1 time(s)" in text
    both = measurement_warnings(_clean(duration_s=0.05, counter_update_period_s={"GPU-a": 0.1}))
    assert any("update period ~0.100 s" in w for w in both)


def test_no_energy_source_and_extras_come_first() -> None:
    warnings = measurement_warnings(
        _clean(energy=[], energy_unavailable_reason="NVML: no driver", extra=["from the meter"])
    )
    assert warnings == [
        "from the meter",
        "no energy measured: NVML: no driver; throughput and latency are still valid",
    ]


def test_read_errors() -> None:
    assert "3 sample read(s) failed on GPU GPU-a (first: boom)" in _one(
        _clean(read_errors={"GPU-a": (3, "boom")})
    )


def test_machine_warnings_judge_the_machine_not_a_window() -> None:
    from llem_energy import machine_warnings

    facts = MeasurementFacts(
        duration_s=0.0,
        energy_unavailable_reason="no NVML",
        persistence_mode={"GPU-a": False, "GPU-b": True},
        ecc_enabled={"GPU-a": True, "GPU-b": False},
        extra=["CPU energy only"],
    )
    warnings = machine_warnings(facts)
    assert warnings[0] == "CPU energy only"
    assert warnings[1].startswith("no energy measured: no NVML")
    assert warnings[2].startswith("persistence mode is off on GPU GPU-a")
    assert warnings[3].startswith("ECC is off on GPU GPU-b")
    assert len(warnings) == 4  # no short-window warning for a machine check

"""Late aggregation, checked against hand-computed values and against numpy on the
concatenated per-request data."""

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llem_persistence import AggregationError, aggregate_results
from llem_persistence.aggregation import MIN_OVERLAP_FRACTION
from llem_schema import (
    BaselineMeasurement,
    DeviceEnergy,
    ExperimentResult,
    MeasurementWarning,
    RawProcessResult,
    RequestRecord,
    ThermalThrottleInfo,
)
from llem_schema.measurement import EnergyDomain
from llem_schema.testing import EXAMPLE_START, example_config, example_raw_result

CONFIG = example_config()
EFFECTIVE = CONFIG.model_dump(mode="json")


def changed(raw: RawProcessResult, **changes: Any) -> RawProcessResult:
    """A validated copy of ``raw`` with ``changes``."""
    return RawProcessResult.model_validate(raw.model_dump() | changes)


def request(
    index: int, ttft_ms: float, gaps_ms: list[float], *, input_tokens: int = 10
) -> RequestRecord:
    return RequestRecord(
        request_index=index,
        batch_index=0,
        input_tokens=input_tokens,
        output_tokens=len(gaps_ms) + 1,
        ttft_ms=ttft_ms,
        e2e_ms=ttft_ms + math.fsum(gaps_ms),
        itl_ms=gaps_ms,
    )


def energy(uuid: str, joules: float, baseline: BaselineMeasurement | None) -> DeviceEnergy:
    return DeviceEnergy(
        device_uuid=uuid,
        domain="gpu",
        energy_j=joules,
        method="counter",
        counter_energy_j=joules,
        integrated_energy_j=joules * 1.01,
        baseline=baseline,
    )


def rapl(
    uuid: str, joules: float, *, domain: EnergyDomain = "cpu_package", idle_w: float | None = None
) -> DeviceEnergy:
    """A host-wide RAPL domain's energy (every process on the host sees the same domain)."""
    return DeviceEnergy(
        device_uuid=uuid,
        domain=domain,
        energy_j=joules,
        method="counter",
        counter_energy_j=joules,
        baseline=None
        if idle_w is None
        else BaselineMeasurement(method="fresh", power_w=idle_w, age_s=0.0, duration_s=5.0),
    )


def codes(result: ExperimentResult) -> list[str]:
    return [w.code for w in result.measurement_warnings]


def the_note(result: ExperimentResult, code: str) -> MeasurementWarning:
    """Aggregation's one warning of ``code``, found among the result's measurement warnings
    and its aggregation warnings alike."""
    (found,) = [w for w in result.measurement_warnings if w.code == code]
    assert found in result.aggregation.warnings
    return found


def short_window(duration_s: float) -> MeasurementWarning:
    """The short-window warning as a process words it for its own window."""
    return MeasurementWarning(
        code="short_window",
        message=(
            f"measurement window was {duration_s:.1f} s, shorter than 60 s: start/stop "
            "effects weigh on the energy figures; measure more prompts or more tokens so the "
            "window lasts at least a minute"
        ),
        figures={"duration_s": duration_s, "min_window_s": 60.0},
    )


FRESH_10W = BaselineMeasurement(method="fresh", power_w=10.0, age_s=0.0, duration_s=5.0)
CACHED_20W = BaselineMeasurement(method="cached", power_w=20.0, age_s=100.0, duration_s=5.0)


def two_processes() -> list[RawProcessResult]:
    p0 = example_raw_result(
        process_index=0,
        num_processes=2,
        duration_s=10.0,
        requests=[request(0, 10.0, [5.0, 5.0, 5.0]), request(1, 30.0, [7.0])],
    )
    p1 = example_raw_result(
        process_index=1,
        num_processes=2,
        duration_s=10.0,
        start_time=EXAMPLE_START + timedelta(seconds=1),
        requests=[request(2, 20.0, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], input_tokens=30)],
    )
    return [
        changed(p0, energy=[energy("GPU-A", 100.0, FRESH_10W)]),
        changed(p1, energy=[energy("GPU-B", 300.0, CACHED_20W)]),
    ]


def test_two_processes_by_hand() -> None:
    result = aggregate_results(two_processes(), effective_config=EFFECTIVE)
    assert result.duration_s == pytest.approx(11.0)  # earliest start to latest end
    assert result.start_time == EXAMPLE_START
    assert result.input_tokens == 10 + 10 + 30
    assert result.output_tokens == 4 + 2 + 7
    assert result.output_tokens_per_s == pytest.approx(13 / 11.0)
    assert result.mean_process_output_tokens_per_s == pytest.approx((6 / 10 + 7 / 10) / 2)
    assert result.total_energy_j == 400.0
    assert result.energy_per_device_j == {"GPU-A": 100.0, "GPU-B": 300.0}
    assert result.baseline_power_w == 30.0
    # each device's idle power over its own process's 10 s window, not the 11 s experiment
    assert result.energy_breakdown is not None
    assert result.energy_breakdown.baseline_energy_j == pytest.approx(10.0 * 10 + 20.0 * 10)
    assert result.energy_adjusted_j == pytest.approx(400.0 - 300.0)
    assert result.energy_breakdown is not None
    assert result.energy_breakdown.baseline_method == "cached"  # the oldest source wins
    assert result.energy_breakdown.baseline_age_s == 100.0
    assert result.energy_breakdown.energy_method == "counter"
    assert result.efficiency.output_tokens_per_j == pytest.approx(13 / 400.0)
    assert result.efficiency.output_tokens_per_j_adjusted == pytest.approx(13 / 100.0)
    assert result.multi_gpu is not None
    assert result.multi_gpu.energy_max_over_min == 3.0
    assert result.aggregation.complete
    # process 1's window opened and closed 1 s after process 0's: it overlaps 9 s of the
    # shorter 10 s, exactly the 90 % gate, but its ends are further apart than 0.25 s
    assert result.aggregation.temporal_overlap_verified
    assert result.aggregation.start_skew_s == pytest.approx(1.0)
    assert result.aggregation.end_skew_s == pytest.approx(1.0)
    assert codes(result) == ["window_skew"]
    assert result.aggregation.device_attribution_verified
    assert result.aggregation.method == "late_concatenation"
    assert [raw.process_index for raw in result.process_results] == [0, 1]


def test_latency_is_computed_once_from_all_requests_not_averaged() -> None:
    result = aggregate_results(two_processes(), effective_config=EFFECTIVE)
    itl = result.latency.itl
    assert itl is not None
    # 3 + 1 gaps from process 0, 6 from process 1: the mean of all 10 gaps.
    assert itl.count == 10
    assert itl.mean_ms == pytest.approx((15.0 + 7.0 + 6.0) / 10)
    per_process_mean_of_means = ((15.0 + 7.0) / 4 + 6.0 / 6) / 2
    assert itl.mean_ms != pytest.approx(per_process_mean_of_means)
    ttft = result.latency.ttft
    assert ttft is not None
    assert (ttft.count, ttft.median_ms, ttft.max_ms) == (3, 20.0, 30.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(min_value=0.1, max_value=500.0), min_size=1, max_size=12),
        min_size=1,
        max_size=4,
    )
)
def test_statistics_equal_numpy_on_the_concatenated_values(ttfts: list[list[float]]) -> None:
    raws = [
        example_raw_result(
            process_index=i,
            num_processes=len(ttfts),
            requests=[request(100 * i + j, v, [1.0]) for j, v in enumerate(values)],
        )
        for i, values in enumerate(ttfts)
    ]
    raws = [changed(raw, energy=[energy(f"GPU-{i}", 50.0, None)]) for i, raw in enumerate(raws)]
    result = aggregate_results(raws, effective_config=EFFECTIVE)
    everything = np.concatenate([np.array(values) for values in ttfts])
    ttft = result.latency.ttft
    assert ttft is not None
    assert ttft.count == everything.size
    for name, q in [("median_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99)]:
        assert getattr(ttft, name) == pytest.approx(float(np.percentile(everything, q)), rel=1e-12)
    assert ttft.mean_ms == pytest.approx(float(everything.mean()), rel=1e-9)


def test_a_device_seen_by_two_processes_counts_once_with_a_warning() -> None:
    p0, p1 = two_processes()
    p1 = changed(p1, energy=[energy("GPU-A", 120.0, FRESH_10W)])
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert result.total_energy_j == 120.0
    assert result.energy_per_device_j == {"GPU-A": 120.0}
    assert result.baseline_power_w == 10.0
    assert not result.aggregation.device_attribution_verified
    shared = the_note(result, "shared_device")
    assert shared.message == (
        "device GPU-A was measured by processes 0, 1; its energy is counted once; "
        "give each process its own device"
    )
    assert shared.figures == {"device": "GPU-A", "processes": "0, 1"}


def test_processes_that_did_not_run_together_are_flagged() -> None:
    p0, p1 = two_processes()
    p1 = changed(
        p1,
        start_time=EXAMPLE_START + timedelta(seconds=100),
        end_time=EXAMPLE_START + timedelta(seconds=110),
    )
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert not result.aggregation.temporal_overlap_verified
    assert result.duration_s == pytest.approx(110.0)
    overlap = the_note(result, "window_overlap")
    assert overlap.message.startswith("processes did not run together for at least 90% of")
    assert overlap.figures == {"min_overlap": MIN_OVERLAP_FRACTION}
    assert the_note(result, "window_skew").figures["start_skew_s"] == pytest.approx(100.0)


def test_a_partial_set_aggregates_as_incomplete_naming_the_missing() -> None:
    raws = [
        example_raw_result(process_index=0, num_processes=3, device_uuid="GPU-0"),
        example_raw_result(process_index=2, num_processes=3, device_uuid="GPU-2"),
    ]
    result = aggregate_results(raws, effective_config=EFFECTIVE)
    assert not result.aggregation.complete
    assert result.aggregation.missing_processes == [1]
    assert result.aggregation.expected_processes == 3
    incomplete = the_note(result, "incomplete")
    assert incomplete.message == (
        "incomplete: processes 1 of 3 have no result; the figures cover the processes that finished"
    )
    assert incomplete.figures == {"processes": "1"}
    assert codes(result) == ["incomplete"]  # windows together: nothing else to say


def test_mixed_models_are_an_error() -> None:
    other = example_config(model="org/Other-1B")
    raws = [
        example_raw_result(process_index=0, num_processes=2),
        example_raw_result(process_index=1, num_processes=2, config=other),
    ]
    with pytest.raises(
        AggregationError,
        match=r"^cannot aggregate results with different models: llem/tiny, org/Other-1B$",
    ):
        aggregate_results(raws, effective_config=EFFECTIVE)


def test_mixed_backends_are_an_error() -> None:
    p0, p1 = two_processes()
    with pytest.raises(AggregationError, match="different backends: pytorch, vllm"):
        aggregate_results([p0, changed(p1, backend="vllm")], effective_config=EFFECTIVE)


def test_two_results_for_one_process_are_an_error() -> None:
    raw = example_raw_result()
    with pytest.raises(AggregationError, match="more than one result for processes 0"):
        aggregate_results([raw, raw], effective_config=EFFECTIVE)


def test_nothing_to_aggregate_is_an_error() -> None:
    with pytest.raises(AggregationError, match="nothing to aggregate: no process results"):
        aggregate_results([], effective_config=EFFECTIVE)


def test_without_any_energy_source_energy_is_none_and_the_rest_still_runs() -> None:
    raws = [example_raw_result(process_index=i, num_processes=2, energy_j=None) for i in range(2)]
    result = aggregate_results(raws, effective_config=EFFECTIVE)
    assert result.total_energy_j is None
    assert result.energy_breakdown is None
    assert result.efficiency.output_tokens_per_j is None
    assert result.output_tokens > 0
    assert result.latency.e2e is not None


def test_energy_from_some_processes_only_is_said_plainly() -> None:
    p0, p1 = two_processes()
    result = aggregate_results([p0, changed(p1, energy=[])], effective_config=EFFECTIVE)
    assert result.total_energy_j == 100.0
    # process 1's tokens were made with unmeasured energy: no tokens-per-joule figure at all
    assert result.efficiency.output_tokens_per_j is None
    assert result.efficiency.energy_per_output_token_adjusted_j is None
    assert result.request_metrics is not None
    assert result.request_metrics.energy_per_request_j is None
    unmeasured = the_note(result, "processes_without_energy")
    assert unmeasured.message.startswith("processes 1 reported no GPU energy")
    assert unmeasured.figures == {"processes": "1", "scope": "gpu"}


def test_a_process_with_cpu_energy_only_does_not_lend_its_tokens_to_the_gpu_energy() -> None:
    """NVML failed in process 1, which fell back to RAPL: its tokens were made with GPU
    energy nobody measured, so a GPU-scope efficiency would count them twice as cheap."""
    p0, p1 = two_processes()
    rapl = DeviceEnergy(
        device_uuid="rapl:host:package-0",
        domain="cpu_package",
        energy_j=50.0,
        method="counter",
        counter_energy_j=50.0,
    )
    result = aggregate_results([p0, changed(p1, energy=[rapl])], effective_config=EFFECTIVE)
    assert (result.energy_scope, result.gpu_energy_j, result.cpu_energy_j) == ("gpu", 100.0, 50.0)
    assert result.efficiency.output_tokens_per_j is None
    assert the_note(result, "processes_without_energy").figures == {
        "processes": "1",
        "scope": "gpu",
    }


def test_a_device_without_baseline_makes_the_adjusted_figure_unavailable() -> None:
    p0, p1 = two_processes()
    p1 = changed(p1, energy=[energy("GPU-B", 300.0, None)])
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert result.total_energy_j == 400.0
    assert result.baseline_power_w is None
    assert result.energy_adjusted_j is None
    assert result.energy_breakdown is not None
    assert result.energy_breakdown.baseline_method == "unavailable"


def test_flops_and_throttling_combine_across_processes() -> None:
    p0, p1 = two_processes()
    p1 = changed(
        p1,
        throttle=ThermalThrottleInfo(
            detected=True,
            power_cap=True,
            throttled_s=2.5,
            temperature_start_c=50,
            temperature_peak_c=81,
        ),
    )
    p0 = changed(
        p0,
        throttle=ThermalThrottleInfo(detected=False, temperature_start_c=55, temperature_peak_c=70),
    )
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert result.flops is not None
    assert p0.flops is not None
    assert p1.flops is not None
    assert result.flops.total_flops == p0.flops.total_flops + p1.flops.total_flops
    assert result.thermal_throttle == ThermalThrottleInfo(
        detected=True,
        power_cap=True,
        throttled_s=2.5,
        temperature_start_c=55,
        temperature_peak_c=81,
    )


def test_warnings_of_processes_are_kept_once_each() -> None:
    p0, p1 = two_processes()
    short = short_window(10.0)
    ecc = MeasurementWarning(
        code="ecc_off", message="ECC is off on GPU-B: enable it.", figures={"device": "GPU-B"}
    )
    harness = MeasurementWarning(code="unclassified", message="from the harness")
    p0 = p0.model_copy(update={"measurement_warnings": [short]})
    p1 = p1.model_copy(update={"measurement_warnings": [short, ecc]})
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE, measurement_warnings=[harness])
    assert result.measurement_warnings == [
        harness,
        short.model_copy(update={"figures": {**short.figures, "processes": "all"}}),
        MeasurementWarning(
            code="ecc_off",
            message="process 1: ECC is off on GPU-B: enable it.",
            figures={"device": "GPU-B", "process": 1},
        ),
        *result.aggregation.warnings,  # aggregation's own, after the processes'
    ]
    assert [w.code for w in result.aggregation.warnings] == ["window_skew"]


def test_host_wide_rapl_domains_seen_by_every_process_are_not_an_attribution_problem() -> None:
    p0, p1 = two_processes()
    rapl = [
        DeviceEnergy(
            device_uuid="rapl:host:package-0",
            domain="cpu_package",
            energy_j=j,
            method="counter",
            counter_energy_j=j,
        )
        for j in (50.0, 55.0)
    ]
    p0 = changed(p0, energy=[*p0.energy, rapl[0]])
    p1 = changed(p1, energy=[*p1.energy, rapl[1]])
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert result.energy_per_device_j["rapl:host:package-0"] == 55.0
    assert result.total_energy_j == 455.0
    assert result.aggregation.device_attribution_verified
    assert "shared_device" not in codes(result)
    assert not any("rapl" in w.message for w in result.measurement_warnings)


def test_processes_outside_the_launch_are_an_error() -> None:
    raws = [
        example_raw_result(process_index=i, num_processes=4, device_uuid=f"G{i}") for i in (0, 3)
    ]
    with pytest.raises(AggregationError, match="processes 3 are outside the 2 expected"):
        aggregate_results(raws, effective_config=EFFECTIVE, expected_processes=2)


def test_processes_that_disagree_on_the_launch_are_an_error() -> None:
    raws = [
        example_raw_result(process_index=0, num_processes=2),
        example_raw_result(process_index=1, num_processes=3, device_uuid="G1"),
    ]
    with pytest.raises(AggregationError, match=r"disagree on how many were launched \(2, 3\)"):
        aggregate_results(raws, effective_config=EFFECTIVE)


def test_a_config_other_than_the_measured_one_is_an_error() -> None:
    other = example_config(n=99).model_dump(mode="json")
    with pytest.raises(AggregationError, match="is not the config the processes measured"):
        aggregate_results(two_processes(), effective_config=other)


# -- energy scopes ---------------------------------------------------------------------------


@pytest.mark.parametrize("rapl_idle_w", [None, 40.0], ids=["rapl-no-baseline", "rapl-baseline"])
def test_gpu_and_rapl_energy_are_apart_and_efficiency_is_of_the_gpus(
    rapl_idle_w: float | None,
) -> None:
    p0, p1 = two_processes()  # GPU-A 100 J (10 W idle), GPU-B 300 J (20 W idle), 10 s each
    host = [
        [
            rapl("rapl:host:package-0", j, idle_w=rapl_idle_w),
            rapl("rapl:host:dram-0", d, domain="dram"),
        ]
        for j, d in ((50.0, 8.0), (55.0, 9.0))
    ]
    p0 = changed(p0, energy=[*p0.energy, *host[0]])
    p1 = changed(p1, energy=[*p1.energy, *host[1]])
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert result.total_energy_j == pytest.approx(400.0 + 55.0 + 9.0)  # every domain summed
    assert result.gpu_energy_j == pytest.approx(400.0)
    assert result.cpu_energy_j == pytest.approx(55.0 + 9.0)  # host-wide: each domain once
    assert result.energy_domains == ["gpu", "cpu_package", "dram"]
    assert result.energy_scope == "gpu"
    assert result.scope_energy_j() == pytest.approx(400.0)
    # the baseline is the GPUs' alone, whether or not RAPL had one
    assert result.baseline_power_w == pytest.approx(30.0)
    assert result.energy_breakdown is not None
    assert result.energy_breakdown.raw_j == pytest.approx(400.0)
    assert result.energy_breakdown.baseline_energy_j == pytest.approx(10.0 * 10 + 20.0 * 10)
    assert result.energy_adjusted_j == pytest.approx(100.0)
    assert result.efficiency.output_tokens_per_j == pytest.approx(13 / 400.0)
    assert result.efficiency.energy_per_output_token_j == pytest.approx(400.0 / 13)
    assert result.efficiency.output_tokens_per_j_adjusted == pytest.approx(13 / 100.0)
    assert result.request_metrics is not None
    assert result.request_metrics.energy_per_request_j == pytest.approx(400.0 / 3)
    assert result.multi_gpu is not None
    assert result.multi_gpu.gpu_uuids == ["GPU-A", "GPU-B"]
    assert result.aggregation.device_attribution_verified
    assert "baseline_clamped" not in codes(result)
    assert ExperimentResult.model_validate_json(result.model_dump_json()) == result


def test_a_cpu_only_run_has_its_efficiency_of_the_cpu_energy() -> None:
    p0, p1 = two_processes()
    host = [
        [
            rapl("rapl:host:package-0", package, idle_w=20.0),
            rapl("rapl:host:dram-0", dram, domain="dram", idle_w=5.0),
        ]
        for package, dram in ((500.0, 80.0), (550.0, 90.0))
    ]
    p0, p1 = changed(p0, energy=host[0]), changed(p1, energy=host[1])
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    assert result.energy_scope == "cpu"
    assert result.gpu_energy_j is None
    assert result.cpu_energy_j == result.total_energy_j == pytest.approx(550.0 + 90.0)
    assert result.energy_domains == ["cpu_package", "dram"]
    assert result.baseline_power_w == pytest.approx(25.0)
    assert result.energy_adjusted_j == pytest.approx(640.0 - 25.0 * 10)
    assert result.efficiency.output_tokens_per_j == pytest.approx(13 / 640.0)
    assert result.efficiency.output_tokens_per_j_adjusted == pytest.approx(13 / 390.0)
    assert result.request_metrics is not None
    assert result.request_metrics.energy_per_request_j == pytest.approx(640.0 / 3)
    assert result.multi_gpu is None
    assert result.aggregation.device_attribution_verified  # host domains are shared by nature
    assert "processes_without_energy" not in codes(result)
    assert ExperimentResult.model_validate_json(result.model_dump_json()) == result


def test_host_energy_metered_by_one_process_per_host_covers_the_others() -> None:
    # the harness lets the first process on each host meter RAPL; the others report none
    p0, p1 = two_processes()
    host = [rapl("rapl:host:package-0", 500.0), rapl("rapl:host:dram-0", 80.0, domain="dram")]
    result = aggregate_results(
        [changed(p0, energy=host), changed(p1, energy=[])], effective_config=EFFECTIVE
    )
    assert result.energy_scope == "cpu"
    assert result.cpu_energy_j == pytest.approx(580.0)
    assert result.efficiency.output_tokens_per_j == pytest.approx(13 / 580.0)
    assert "processes_without_energy" not in codes(result)
    # a process on another host, where nobody metered it, is a process without energy
    elsewhere = changed(p1, energy=[], hostname="node-2")
    result = aggregate_results([changed(p0, energy=host), elsewhere], effective_config=EFFECTIVE)
    assert result.efficiency.output_tokens_per_j is None
    assert the_note(result, "processes_without_energy").figures == {
        "processes": "1",
        "scope": "cpu",
    }


@pytest.mark.parametrize("with_rapl", [False, True], ids=["gpu", "gpu-and-rapl"])
def test_a_baseline_above_the_energy_clamps_and_withholds_the_adjusted_figures(
    with_rapl: bool,
) -> None:
    # 5 W idle over 10 s is 50 J, more than the 40 J the GPU measured
    raw = example_raw_result(energy_j=40.0, baseline_power_w=5.0, duration_s=10.0)
    if with_rapl:  # CPU energy is outside the GPU scope: it does not lift the GPU's figure
        raw = changed(raw, energy=[*raw.energy, rapl("rapl:host:package-0", 500.0)])
    result = aggregate_results([raw], effective_config=EFFECTIVE)
    assert result.energy_scope == "gpu"
    assert result.energy_adjusted_j == 0.0
    assert result.efficiency.output_tokens_per_j == pytest.approx(raw.output_tokens / 40.0)
    assert result.efficiency.output_tokens_per_j_adjusted is None  # not infinitely efficient
    assert result.efficiency.energy_per_output_token_adjusted_j is None
    clamped = the_note(result, "baseline_clamped")
    assert clamped.figures == {"baseline_energy_j": 50.0, "energy_j": 40.0}
    assert clamped.message.startswith(
        "idle power over the window (50.0 J) came to more than the energy measured (40.0 J)"
    )
    assert ExperimentResult.model_validate_json(result.model_dump_json()) == result


def test_a_baseline_under_the_energy_is_not_clamped() -> None:
    raw = example_raw_result(energy_j=60.0, baseline_power_w=5.0, duration_s=10.0)
    result = aggregate_results([raw], effective_config=EFFECTIVE)
    assert result.energy_adjusted_j == pytest.approx(10.0)
    assert result.efficiency.output_tokens_per_j_adjusted == pytest.approx(raw.output_tokens / 10.0)
    assert codes(result) == []


# -- windows of several processes ------------------------------------------------------------

SHARDS = (7, 5, 3, 1)
"""Requests per process: uneven shards of 16 prompts over 4 processes."""


def shards(starts_s: Sequence[float], ends_s: Sequence[float]) -> list[RawProcessResult]:
    """Four processes with uneven shards, each on its own GPU (100 W, 5 W idle), their
    windows from ``starts_s`` to ``ends_s`` after EXAMPLE_START."""
    return [
        example_raw_result(
            process_index=i,
            num_processes=len(SHARDS),
            n_requests=n,
            seed=i,
            energy_j=100.0 * (end - start),
            start_time=EXAMPLE_START + timedelta(seconds=start),
            duration_s=end - start,
        )
        for i, (n, start, end) in enumerate(zip(SHARDS, starts_s, ends_s, strict=True))
    ]


def test_uneven_shards_whose_windows_close_together_have_no_skew_warning() -> None:
    # the processes started a little apart and finished their shards at different times,
    # but every window closed at the common barrier
    raws = shards((0.0, 0.05, 0.12, 0.2), (30.0,) * 4)
    result = aggregate_results(raws, effective_config=EFFECTIVE)
    assert result.aggregation.start_skew_s == pytest.approx(0.2)
    assert result.aggregation.end_skew_s == pytest.approx(0.0, abs=1e-6)
    assert result.aggregation.temporal_overlap_verified
    assert result.aggregation.complete
    assert codes(result) == []
    assert result.duration_s == pytest.approx(30.0)
    assert result.request_metrics is not None
    assert result.request_metrics.requests == sum(SHARDS)
    assert result.output_tokens == sum(raw.output_tokens for raw in raws)
    assert result.output_tokens_per_s == pytest.approx(result.output_tokens / 30.0)


def test_one_process_is_one_window_without_skew() -> None:
    result = aggregate_results([example_raw_result()], effective_config=EFFECTIVE)
    assert result.aggregation.start_skew_s is None
    assert result.aggregation.end_skew_s is None


@pytest.mark.parametrize(
    ("late_s", "window_s", "expected"),
    [
        # 5 s late at both ends of a 30 s window: overlap 25 of 30 s, skew over 0.7 s
        (5.0, 30.0, ["window_overlap", "window_skew"]),
        # 1 s late: overlap 29 of 30 s passes the 90 % gate; the skew gate (0.7 s) does not
        (1.0, 30.0, ["window_skew"]),
        # 1 s late on a 300 s window: under 2 % of it, neither gate
        (1.0, 300.0, []),
    ],
)
def test_windows_apart_are_warned_by_the_skew_and_overlap_gates(
    late_s: float, window_s: float, expected: list[str]
) -> None:
    # process 3 opened and closed its window late_s after the others
    raws = shards((0.0, 0.0, 0.0, late_s), (window_s, window_s, window_s, window_s + late_s))
    result = aggregate_results(raws, effective_config=EFFECTIVE)
    assert result.aggregation.start_skew_s == pytest.approx(late_s)
    assert result.aggregation.end_skew_s == pytest.approx(late_s)
    assert sorted(codes(result)) == expected
    assert result.aggregation.temporal_overlap_verified == ("window_overlap" not in expected)
    if "window_skew" in expected:
        skew = the_note(result, "window_skew")
        assert skew.figures == {
            "start_skew_s": pytest.approx(late_s),
            "end_skew_s": pytest.approx(late_s),
            "limit_s": pytest.approx(max(0.25, 0.02 * (window_s + late_s))),
        }
        assert skew.message.startswith(
            f"the processes' windows started {late_s:.3f} s and ended {late_s:.3f} s apart"
        )


# -- warnings of processes -------------------------------------------------------------------


def test_process_warnings_are_compared_by_code_not_by_wording() -> None:
    p0, p1 = two_processes()
    ecc = [
        MeasurementWarning(
            code="ecc_off", message=f"ECC is off on GPU {uuid}", figures={"device": uuid}
        )
        for uuid in ("GPU-A", "GPU-B")
    ]
    drift = MeasurementWarning(
        code="thermal_drift",
        message="GPU 1 warmed by 12.0 °C during the window (more than 10 °C)",
        figures={"gpu_index": 1, "rise_c": 12.0, "limit_c": 10.0},
    )
    # both windows were short, each process worded its own length
    p0 = p0.model_copy(update={"measurement_warnings": [short_window(10.0), ecc[0]]})
    p1 = p1.model_copy(update={"measurement_warnings": [ecc[1], short_window(10.3), drift]})
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    from_processes = [
        w for w in result.measurement_warnings if w not in result.aggregation.warnings
    ]
    assert codes(result).count("short_window") == 1
    assert from_processes == [
        # raised by every process: once, in the first process's words, for all of them
        short_window(10.0).model_copy(
            update={"figures": {**short_window(10.0).figures, "processes": "all"}}
        ),
        # the same code about another device is another warning: each names its process
        MeasurementWarning(
            code="ecc_off",
            message="process 0: ECC is off on GPU GPU-A",
            figures={"device": "GPU-A", "process": 0},
        ),
        MeasurementWarning(
            code="ecc_off",
            message="process 1: ECC is off on GPU GPU-B",
            figures={"device": "GPU-B", "process": 1},
        ),
        # raised by one process only: named
        drift.model_copy(
            update={
                "message": f"process 1: {drift.message}",
                "figures": {**drift.figures, "process": 1},
            }
        ),
    ]
    # the processes' own results keep their own words
    assert result.process_results[1].measurement_warnings[1] == short_window(10.3)


def test_warnings_without_a_device_are_never_lost_in_the_merge() -> None:
    p0, p1 = two_processes()

    def backend(text: str) -> MeasurementWarning:
        return MeasurementWarning(code="backend", message=text)

    def no_baseline(uuid: str) -> MeasurementWarning:
        return MeasurementWarning(
            code="no_baseline", message=f"no idle baseline for {uuid}", figures={"device": uuid}
        )

    # both processes give the same two backend warnings, each its own GPU's no_baseline
    p0 = p0.model_copy(
        update={"measurement_warnings": [backend("A"), backend("B"), no_baseline("GPU-A")]}
    )
    p1 = p1.model_copy(
        update={"measurement_warnings": [backend("A"), backend("B"), no_baseline("GPU-B")]}
    )
    result = aggregate_results([p0, p1], effective_config=EFFECTIVE)
    merged = [(w.code, w.message) for w in result.measurement_warnings]
    assert ("backend", "A") in merged
    assert ("backend", "B") in merged  # a second backend warning is not dropped
    assert ("no_baseline", "process 0: no idle baseline for GPU-A") in merged
    assert ("no_baseline", "process 1: no idle baseline for GPU-B") in merged


def test_one_process_s_warnings_are_kept_as_they_are() -> None:
    ecc = MeasurementWarning(code="ecc_off", message="ECC is off", figures={"device": "GPU-A"})
    raw = example_raw_result().model_copy(
        update={"measurement_warnings": [short_window(10.0), ecc]}
    )
    result = aggregate_results([raw], effective_config=EFFECTIVE)
    # neither named by process nor marked as every process's
    assert result.measurement_warnings == [short_window(10.0), ecc]


def test_a_window_that_measured_0_j_aggregates_without_an_adjusted_figure() -> None:
    """A window shorter than the counter's update period can read 0 J: nothing clamped,
    nothing to warn about, and no 0 J/token either."""
    raw = example_raw_result(energy_j=0.0, baseline_power_w=5.0)
    result = aggregate_results([raw], effective_config=EFFECTIVE)
    assert (result.total_energy_j, result.energy_adjusted_j) == (0.0, 0.0)
    assert result.efficiency.energy_per_output_token_adjusted_j is None
    assert result.efficiency.output_tokens_per_j_adjusted is None
    assert "baseline_clamped" not in [w.code for w in result.measurement_warnings]

"""Late aggregation, checked against hand-computed values and against numpy on the
concatenated per-request data."""

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llem_persistence import AggregationError, aggregate_results
from llem_schema import (
    BaselineMeasurement,
    DeviceEnergy,
    RawProcessResult,
    RequestRecord,
    ThermalThrottleInfo,
)
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
    assert result.aggregation.temporal_overlap_verified
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
    expected = (
        "device GPU-A was measured by processes 0, 1; its energy is counted once; "
        "give each process its own device"
    )
    assert expected in result.measurement_warnings
    assert expected in result.aggregation.warnings


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
    assert any("did not run together" in w for w in result.measurement_warnings)


def test_a_partial_set_aggregates_as_incomplete_naming_the_missing() -> None:
    raws = [
        example_raw_result(process_index=0, num_processes=3, device_uuid="GPU-0"),
        example_raw_result(process_index=2, num_processes=3, device_uuid="GPU-2"),
    ]
    result = aggregate_results(raws, effective_config=EFFECTIVE)
    assert not result.aggregation.complete
    assert result.aggregation.missing_processes == [1]
    assert result.aggregation.expected_processes == 3
    assert (
        "incomplete: processes 1 of 3 have no result; the figures cover the processes that finished"
        in result.measurement_warnings
    )


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
    assert any(w.startswith("processes 1 reported no energy") for w in result.measurement_warnings)


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
    short = "Short window (10.0 s < 60 s): increase n."
    p0 = changed(p0, measurement_warnings=[short])
    p1 = changed(p1, measurement_warnings=[short, "ECC is off on GPU-B: enable it."])
    result = aggregate_results(
        [p0, p1], effective_config=EFFECTIVE, measurement_warnings=["from the harness"]
    )
    assert result.measurement_warnings == [
        "from the harness",
        short,
        "process 1: ECC is off on GPU-B: enable it.",
    ]


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
    assert not any("rapl" in w for w in result.measurement_warnings)


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

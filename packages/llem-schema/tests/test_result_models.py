"""Construction rules of the result models, including the wiring bugs of earlier tools:
a misspelt keyword silently dropped, baseline figures computed but never set, an empty
effective_config naming the output directory 'unknown'."""

import re
from typing import Any

import pytest
from pydantic import ValidationError

from llem_schema import (
    AggregationMetadata,
    DeviceEnergy,
    EnergyBreakdown,
    ExperimentResult,
    RawProcessResult,
    ThermalThrottleInfo,
)
from llem_schema.testing import example_raw_result, example_result


def _fields(result: ExperimentResult, **changes: Any) -> dict[str, Any]:
    return result.model_dump() | changes


def test_example_result_is_consistent() -> None:
    result = example_result()
    assert result.total_tokens == result.input_tokens + result.output_tokens
    assert result.baseline_power_w == 5.0
    assert result.energy_adjusted_j == pytest.approx(120.0 - 5.0 * 10.0)
    assert result.efficiency.output_tokens_per_j == pytest.approx(result.output_tokens / 120.0)


def test_misspelt_field_fails_at_construction() -> None:
    with pytest.raises(ValidationError, match="timeseries_path\n  Extra inputs are not permitted"):
        ExperimentResult(**_fields(example_result(), timeseries_path="timeseries.parquet"))


def test_baseline_computed_but_not_set_is_refused() -> None:
    fields = _fields(example_result(), baseline_power_w=None)
    with pytest.raises(ValidationError, match="baseline_power_w must equal energy_breakdown"):
        ExperimentResult(**fields)


def test_adjusted_energy_computed_but_not_set_is_refused() -> None:
    fields = _fields(example_result(), energy_adjusted_j=None)
    with pytest.raises(ValidationError, match="energy_adjusted_j must equal energy_breakdown"):
        ExperimentResult(**fields)


def test_empty_effective_config_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=re.escape("effective_config.model must be 'llem/tiny'")
    ):
        ExperimentResult(**_fields(example_result(), effective_config={}))


def test_device_energies_must_add_up() -> None:
    result = example_result()
    fields = _fields(result, energy_per_device_j={"GPU-a": 100.0, "GPU-b": 100.0})
    with pytest.raises(ValidationError, match="energy_per_device_j must sum to total_energy_j"):
        ExperimentResult(**fields)


def test_efficiency_must_follow_from_tokens_and_energy() -> None:
    result = example_result()
    efficiency = result.efficiency.model_dump() | {"output_tokens_per_j": 99.0}
    with pytest.raises(
        ValidationError, match=re.escape("efficiency.output_tokens_per_j does not follow")
    ):
        ExperimentResult(**_fields(result, efficiency=efficiency))


def test_throughput_must_follow_from_tokens_and_duration() -> None:
    with pytest.raises(ValidationError, match="output_tokens_per_s must equal"):
        ExperimentResult(**_fields(example_result(), output_tokens_per_s=1.0))


def test_a_result_without_energy_has_no_energy_figures() -> None:
    result = example_result([example_raw_result(energy_j=None)])
    assert result.total_energy_j is None
    assert result.efficiency.output_tokens_per_j is None
    with pytest.raises(ValidationError, match="energy details need total_energy_j"):
        ExperimentResult(**_fields(result, baseline_power_w=5.0))


def test_nan_is_never_stored() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        ExperimentResult(**_fields(example_result(), total_tokens_per_s=float("nan")))


@pytest.mark.parametrize(
    "name", ["../timeseries.parquet", "/tmp/t.parquet", "..", "", "result.json", ".hidden.parquet"]
)
def test_timeseries_must_be_a_file_name_beside_the_result(name: str) -> None:
    with pytest.raises(
        ValidationError, match=re.escape("must be a plain file name beside the JSON document")
    ):
        ExperimentResult(**_fields(example_result(), timeseries=name))


def test_result_is_frozen() -> None:
    result = example_result()
    with pytest.raises(ValidationError, match="frozen"):
        result.total_energy_j = 0.0  # type: ignore[misc]


def test_process_results_must_match_the_aggregation() -> None:
    result = example_result()
    aggregation = result.aggregation.model_dump() | {"num_processes": 2, "expected_processes": 2}
    with pytest.raises(ValidationError, match="process_results must hold"):
        ExperimentResult(**_fields(result, aggregation=aggregation))


def test_two_processes_on_distinct_devices_sum_their_energy() -> None:
    raws = [
        example_raw_result(process_index=0, num_processes=2, energy_j=100.0, seed=1),
        example_raw_result(process_index=1, num_processes=2, energy_j=300.0, seed=2),
    ]
    result = example_result(raws)
    assert result.total_energy_j == 400.0
    assert result.multi_gpu is not None
    assert result.multi_gpu.energy_max_over_min == 3.0
    assert result.output_tokens == raws[0].output_tokens + raws[1].output_tokens


def test_aggregation_complete_means_nothing_missing() -> None:
    with pytest.raises(ValidationError, match="complete must be true exactly when"):
        AggregationMetadata(
            num_processes=1,
            expected_processes=2,
            temporal_overlap_verified=True,
            device_attribution_verified=True,
            complete=True,
            missing_processes=[1],
        )


def test_device_energy_must_be_the_figure_its_method_names() -> None:
    with pytest.raises(ValidationError, match="energy_j must equal the counter figure"):
        DeviceEnergy(
            device_uuid="GPU-x",
            domain="gpu",
            energy_j=10.0,
            method="counter",
            counter_energy_j=None,
            integrated_energy_j=10.0,
        )


def test_breakdown_adjusted_energy_follows_the_definition() -> None:
    with pytest.raises(
        ValidationError,
        match=r"adjusted_j \(50.0\) must equal max\(0, raw_j - baseline_energy_j\) = 80.0",
    ):
        EnergyBreakdown(
            raw_j=100.0,
            baseline_energy_j=20.0,
            adjusted_j=50.0,
            baseline_power_w=10.0,
            baseline_method="fresh",
            baseline_age_s=None,
            duration_s=2.0,
            energy_method="counter",
        )


def test_throttle_detected_must_match_its_kinds() -> None:
    assert ThermalThrottleInfo(detected=True, power_cap=True).detected
    with pytest.raises(ValidationError, match="detected must be true exactly"):
        ThermalThrottleInfo(detected=True)


def test_raw_process_index_within_the_launch() -> None:
    fields = example_raw_result().model_dump() | {"process_index": 1}
    with pytest.raises(ValidationError, match=r"process_index 1 is outside 0..0"):
        RawProcessResult(**fields)


def test_raw_experiment_id_must_be_path_safe() -> None:
    fields = example_raw_result().model_dump() | {"experiment_id": "../../etc"}
    with pytest.raises(
        ValidationError, match=re.escape("experiment id '../../etc' is not allowed")
    ):
        RawProcessResult(**fields)


def test_raw_timeseries_must_stay_beside_the_staged_file() -> None:
    fields = example_raw_result().model_dump() | {"timeseries": "../../outside/secret.parquet"}
    with pytest.raises(ValidationError, match="must be a plain file name beside the JSON document"):
        RawProcessResult(**fields)

"""The flattened row: its documented column order, names, types and values."""

from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pytest

from llem_persistence.exporters import (
    REQUEST_COLUMNS,
    SUMMARY_COLUMN_NAMES,
    SUMMARY_COLUMNS,
    Column,
    summary_row,
)
from llem_schema import (
    EnvironmentSnapshot,
    ExperimentResult,
    GpuInfo,
    ThermalThrottleInfo,
)
from llem_schema.tabular import flatten_config
from llem_schema.testing import example_config, example_raw_result, example_result

# The documented order, written out: a change here must be deliberate (append only).
EXPECTED_ORDER: Final = (
    "experiment_id", "model", "backend", "backend_version", "schema_version",
    "measurement_config_hash", "start_time_utc", "end_time_utc", "duration_s",
    "config_name", "config_precision", "config_batch_size", "config_n", "config_num_processes",
    "config_max_input_tokens", "config_max_new_tokens", "config_decoder_mode",
    "config_decoder_temperature", "config_decoder_top_p", "config_decoder_top_k",
    "config_decoder_ignore_eos", "config_prompts_source", "config_warmup_count",
    "config_baseline_enabled", "config_energy_source", "config_energy_sample_rate_hz",
    "config_seed",
    "input_tokens", "output_tokens", "total_tokens", "num_requests", "num_processes",
    "num_warnings",
    "total_energy_j", "gpu_energy_j", "cpu_energy_j", "energy_scope", "energy_adjusted_j",
    "baseline_power_w", "num_energy_devices",
    "energy_breakdown_energy_method", "energy_breakdown_baseline_method",
    "energy_breakdown_baseline_age_s", "energy_breakdown_duration_s",
    "output_tokens_per_s", "total_tokens_per_s", "mean_process_output_tokens_per_s",
    "efficiency_output_tokens_per_j", "efficiency_energy_per_output_token_j",
    "efficiency_output_tokens_per_j_adjusted", "efficiency_energy_per_output_token_adjusted_j",
    *(
        f"latency_{metric}_{stat}"
        for metric in ("ttft", "itl", "tpot", "e2e")
        for stat in ("count", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")
    ),
    "flops_total_flops", "flops_method", "peak_memory_mb", "peak_memory_source",
    "multi_gpu_num_gpus", "multi_gpu_energy_max_over_min",
    "thermal_throttle_detected", "thermal_throttle_slowdown_s", "thermal_throttle_power_cap_s",
    "thermal_throttle_throttled_s",
    "thermal_throttle_temperature_start_c", "thermal_throttle_temperature_peak_c",
    "warmup_result_batches", "warmup_result_duration_s", "warmup_result_converged",
    "warmup_result_final_cv",
    "environment_snapshot_hostname", "environment_snapshot_gpu_names",
    "environment_snapshot_num_gpus", "environment_snapshot_driver_version",
    "environment_snapshot_cuda_version",
    "aggregation_method", "aggregation_expected_processes", "aggregation_complete",
    "aggregation_missing_processes", "aggregation_temporal_overlap_verified",
    "aggregation_device_attribution_verified", "aggregation_num_warnings", "timeseries",
    "energy_j",
)  # fmt: skip

UNIT_SUFFIXES: Final = ("_j", "_w", "_s", "_ms", "_mb", "_c", "_hz", "_flops", "_utc")
KIND_TYPES: Final = {
    "string": str,
    "int64": int,
    "float64": float,
    "bool": bool,
    "timestamp": datetime,
}


def _rich_result() -> ExperimentResult:
    config = example_config(
        name="sweep-a",
        precision="bf16",
        n=16,
        num_processes=2,
        decoder={"mode": "sampling", "temperature": 0.7},
        pytorch={"batch_size": 4},
    )
    raws = [
        example_raw_result(
            process_index=i, num_processes=2, config=config, seed=i, energy_j=100.0 + 20 * i
        )
        for i in range(2)
    ]
    result = example_result(raws, config=config, measurement_warnings=["short window", "ECC off"])
    return result.model_copy(
        update={
            "environment_snapshot": EnvironmentSnapshot(
                collected_at=datetime(2026, 11, 22, 14, 0, tzinfo=UTC),
                hostname="gpu-node-7",
                os="Linux 6.8",
                python_version="3.11.7",
                gpus=[
                    GpuInfo(index=0, uuid="GPU-a", name="NVIDIA H100"),
                    GpuInfo(index=1, uuid="GPU-b", name="NVIDIA H100"),
                ],
                driver_version="550.54",
            ),
            "thermal_throttle": ThermalThrottleInfo(
                detected=True, sw_thermal=True, throttled_s=1.5, temperature_peak_c=83.0
            ),
        }
    )


def test_column_order_is_the_documented_one() -> None:
    assert SUMMARY_COLUMN_NAMES == EXPECTED_ORDER
    assert SUMMARY_COLUMN_NAMES[:9] == (
        "experiment_id",
        "model",
        "backend",
        "backend_version",
        "schema_version",
        "measurement_config_hash",
        "start_time_utc",
        "end_time_utc",
        "duration_s",
    )
    assert len(set(SUMMARY_COLUMN_NAMES)) == len(SUMMARY_COLUMN_NAMES)


def test_every_float_and_timestamp_column_names_its_unit() -> None:
    unitless_ratios = {
        "multi_gpu_energy_max_over_min",
        "warmup_result_final_cv",
        "config_decoder_temperature",
        "config_decoder_top_p",
    }
    columns: list[Column[Any]] = [*SUMMARY_COLUMNS, *REQUEST_COLUMNS]
    for column in columns:
        assert column.description.strip(), column.name
        if column.kind in ("float64", "timestamp") and column.name not in unitless_ratios:
            assert column.name.endswith(UNIT_SUFFIXES) or "_per_" in column.name, column.name


def test_request_columns_are_the_documented_ones() -> None:
    assert tuple(c.name for c in REQUEST_COLUMNS) == (
        "experiment_id",
        "process_index",
        "request_index",
        "batch_index",
        "input_tokens",
        "output_tokens",
        "ttft_ms",
        "e2e_ms",
        "itl_mean_ms",
        "tpot_ms",
        # added for the per-request export; new columns go at the end, old ones never move
        "start_s",
        "scheduled_s",
        "itl_p50_ms",
        "itl_p99_ms",
        "itl_max_ms",
        "error",
    )


@pytest.mark.parametrize("energy", [True, False], ids=["with-energy", "no-energy"])
def test_each_value_has_its_columns_type(energy: bool) -> None:
    result = (
        _rich_result()
        if energy
        else example_result([example_raw_result(energy_j=None)], measurement_warnings=[])
    )
    for column, value in zip(SUMMARY_COLUMNS, summary_row(result), strict=True):
        if value is not None:
            expected = KIND_TYPES[column.kind]
            assert type(value) is expected, (column.name, value)


def test_values_match_the_result_field_by_field() -> None:
    result = _rich_result()
    row = dict(zip(SUMMARY_COLUMN_NAMES, summary_row(result), strict=True))
    requests = [r for p in result.process_results for r in p.requests]
    ttft = [r.ttft_ms for r in requests if r.ttft_ms is not None]
    energy = 100.0 + 120.0
    assert row["experiment_id"] == result.experiment_id
    assert row["start_time_utc"] == result.start_time
    assert row["config_name"] == "sweep-a"
    assert row["config_precision"] == "bf16"
    assert row["config_batch_size"] == 4
    assert row["config_n"] == 16
    assert row["config_num_processes"] == 2
    assert row["config_decoder_mode"] == "sampling"
    assert row["config_decoder_temperature"] == 0.7
    assert row["config_decoder_top_k"] == 0
    assert row["config_baseline_enabled"] is True
    assert row["num_requests"] == 16
    assert row["num_processes"] == 2
    assert row["num_warnings"] == 2
    assert row["input_tokens"] == sum(r.input_tokens for r in requests)
    assert row["output_tokens"] == sum(r.output_tokens for r in requests)
    assert row["total_energy_j"] == pytest.approx(energy)
    assert row["num_energy_devices"] == 2
    assert row["energy_breakdown_baseline_method"] == "fresh"
    assert row["efficiency_output_tokens_per_j"] == pytest.approx(result.output_tokens / energy)
    assert row["latency_ttft_count"] == len(ttft)
    assert row["latency_ttft_p95_ms"] == pytest.approx(float(np.percentile(ttft, 95)))
    assert row["latency_ttft_max_ms"] == max(ttft)
    assert row["multi_gpu_num_gpus"] == 2
    assert row["multi_gpu_energy_max_over_min"] == pytest.approx(120.0 / 100.0)
    assert row["thermal_throttle_detected"] is True
    assert row["thermal_throttle_temperature_peak_c"] == 83.0
    assert row["thermal_throttle_temperature_start_c"] is None
    assert row["environment_snapshot_hostname"] == "gpu-node-7"
    assert row["environment_snapshot_gpu_names"] == "NVIDIA H100"
    assert row["environment_snapshot_num_gpus"] == 2
    assert row["environment_snapshot_cuda_version"] is None
    assert row["peak_memory_mb"] == 512.0
    assert row["aggregation_complete"] is True
    assert row["aggregation_missing_processes"] is None
    assert row["timeseries"] is None


def test_missing_energy_gives_missing_values_not_zeros() -> None:
    result = example_result([example_raw_result(energy_j=None)])
    row = dict(zip(SUMMARY_COLUMN_NAMES, summary_row(result), strict=True))
    for name in (
        "total_energy_j",
        "energy_adjusted_j",
        "baseline_power_w",
        "num_energy_devices",
        "energy_breakdown_baseline_method",
        "efficiency_output_tokens_per_j",
        "efficiency_energy_per_output_token_adjusted_j",
        "multi_gpu_num_gpus",
        "environment_snapshot_hostname",
    ):
        assert row[name] is None, name
    assert row["output_tokens_per_s"] == pytest.approx(result.output_tokens / result.duration_s)


def test_config_settings_missing_or_of_another_type_are_missing_values() -> None:
    result = example_result()
    odd = dict(result.effective_config)
    odd["n"] = "many"  # a string where a number belongs
    odd["pytorch"] = {}
    del odd["precision"]
    row = dict(
        zip(
            SUMMARY_COLUMN_NAMES,
            summary_row(result.model_copy(update={"effective_config": odd})),
            strict=True,
        )
    )
    assert row["config_n"] is None
    assert row["config_batch_size"] is None
    assert row["config_precision"] is None
    assert row["config_seed"] == result.effective_config["seed"]


def test_flatten_config_uses_dotted_keys_and_keeps_lists_whole() -> None:
    flat = dict(
        flatten_config(
            {"n": 8, "decoder": {"mode": "greedy", "top_k": None}, "tags": ["a", "b"], "x": {}}
        )
    )
    assert flat == {
        "n": 8,
        "decoder.mode": "greedy",
        "decoder.top_k": None,
        "tags": '["a","b"]',
        "x": "{}",
    }

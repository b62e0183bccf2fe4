"""Parquet export, read back with pyarrow: schema, types and rows compared."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llem_persistence.exporters import SUMMARY_COLUMN_NAMES, SUMMARY_COLUMNS, export_parquet
from llem_persistence.exporters.parquet import BATCH_ROWS
from llem_schema import SCHEMA_VERSION, ExperimentResult
from llem_schema.testing import example_config, example_raw_result, example_result

ARROW_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def _results() -> list[ExperimentResult]:
    config = example_config(precision="fp16", pytorch={"batch_size": 8}, n=16)
    first = example_result(
        [example_raw_result(config=config, n_requests=16, seed=3)],
        config=config,
        measurement_warnings=["short window: run at least 60 s"],
    )
    second = example_result([example_raw_result(energy_j=None, seed=4)])
    return [first, second.model_copy(update={"experiment_id": "no_energy_run"})]


def test_schema_has_the_documented_columns_and_types(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    export_parquet(_results(), target)

    schema = pq.read_schema(target)
    assert tuple(schema.names) == SUMMARY_COLUMN_NAMES
    for column in SUMMARY_COLUMNS:
        field = schema.field(column.name)
        assert field.type == ARROW_TYPES[column.kind], column.name
        assert field.nullable
        assert field.metadata == {b"description": column.description.encode()}
    assert schema.field("start_time_utc").type == pa.timestamp("us", tz="UTC")
    assert schema.field("output_tokens").type == pa.int64()
    assert schema.field("efficiency_output_tokens_per_j").type == pa.float64()
    assert schema.field("aggregation_complete").type == pa.bool_()
    assert schema.metadata is not None
    assert schema.metadata[b"llem.schema_version"] == SCHEMA_VERSION.encode()


def test_rows_read_back_equal_the_results(tmp_path: Path) -> None:
    results = _results()
    target = tmp_path / "results.parquet"
    assert export_parquet(results, target) == 2

    rows = pq.read_table(target).to_pylist()
    assert len(rows) == 2
    first, second = rows
    result = results[0]
    assert first["experiment_id"] == result.experiment_id
    assert first["start_time_utc"] == result.start_time
    assert first["start_time_utc"] == datetime(2026, 11, 22, 14, 3, 5, tzinfo=UTC)
    assert first["config_precision"] == "fp16"
    assert first["config_batch_size"] == 8
    assert first["num_requests"] == 16
    assert first["num_warnings"] == 1
    assert first["output_tokens"] == result.output_tokens
    assert first["total_energy_j"] == result.total_energy_j
    assert result.latency.ttft is not None
    assert first["latency_ttft_median_ms"] == result.latency.ttft.median_ms
    assert first["efficiency_output_tokens_per_j"] == result.efficiency.output_tokens_per_j
    assert first["aggregation_complete"] is True
    assert second["experiment_id"] == "no_energy_run"
    for name in ("total_energy_j", "energy_adjusted_j", "efficiency_output_tokens_per_j"):
        assert second[name] is None, name  # nulls, not NaN or 0
    # every value of every column, against the flattened row
    for result, row in zip(results, rows, strict=True):
        for column in SUMMARY_COLUMNS:
            assert row[column.name] == column.get(result), column.name


def test_null_counts_mark_missing_values(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    export_parquet(_results(), target)
    table = pq.read_table(target)
    assert table.column("total_energy_j").null_count == 1
    assert table.column("experiment_id").null_count == 0
    assert table.column("config_name").null_count == 2


def test_many_results_stream_in_record_batches(tmp_path: Path) -> None:
    base = example_result()
    count = BATCH_ROWS * 2 + 5

    def generate() -> Iterator[ExperimentResult]:
        for index in range(count):
            yield base.model_copy(update={"experiment_id": f"run_{index:05d}"})

    target = tmp_path / "many.parquet"
    assert export_parquet(generate(), target) == count

    metadata = pq.read_metadata(target)
    assert metadata.num_rows == count
    assert metadata.num_row_groups == 3  # written batch by batch, not as one table
    ids = pq.read_table(target, columns=["experiment_id"]).column(0).to_pylist()
    assert ids == [f"run_{index:05d}" for index in range(count)]


def test_no_results_writes_the_schema_and_no_rows(tmp_path: Path) -> None:
    target = tmp_path / "empty.parquet"
    assert export_parquet(iter([]), target) == 0
    table = pq.read_table(target)
    assert table.num_rows == 0
    assert tuple(table.schema.names) == SUMMARY_COLUMN_NAMES


def test_file_is_compressed_with_zstd(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    export_parquet(_results(), target)
    column = pq.read_metadata(target).row_group(0).column(0)
    assert column.compression == "ZSTD"

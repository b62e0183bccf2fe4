from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem_persistence import PersistenceError, merge_timeseries, read_timeseries, write_timeseries
from llem_schema import TIMESERIES_COLUMNS, PowerSample
from llem_schema.testing import example_result


def samples(count: int, *, devices: int = 2, start_s: float = 0.0) -> list[PowerSample]:
    return [
        PowerSample(
            timestamp_s=start_s + i * 0.1,
            gpu_index=device,
            gpu_power_w=100.0 + i + device,
            gpu_temperature_c=40.0 + 0.5 * i,
            gpu_memory_used_mb=None if i % 3 == 0 else 1024.0,
            gpu_utilization_pct=90.0,
            clock_event_reasons=0 if i % 2 else 4,
        )
        for i in range(count)
        for device in range(devices)
    ]


def test_written_columns_types_compression_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "timeseries.parquet"
    rows = samples(5)
    assert write_timeseries(rows, path)
    table = read_timeseries(path)
    assert tuple(table.column_names) == TIMESERIES_COLUMNS
    assert table.schema.field("timestamp_s").type == pa.float64()
    assert table.schema.field("gpu_index").type == pa.int32()
    assert table.schema.field("gpu_power_w").type == pa.float64()
    assert table.num_rows == 10
    assert table.to_pylist() == [
        {name: getattr(sample, name) for name in TIMESERIES_COLUMNS} for sample in rows
    ]
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_nothing_is_written_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "timeseries.parquet"
    assert not write_timeseries([], path)
    assert not path.exists()


def test_merge_shifts_each_process_onto_one_clock_and_sorts(tmp_path: Path) -> None:
    first, second = tmp_path / "p0.parquet", tmp_path / "p1.parquet"
    write_timeseries(samples(3, devices=1), first)
    write_timeseries([PowerSample(0.05, 1, 200.0, 50.0)], second)
    merged = tmp_path / "merged.parquet"
    assert merge_timeseries([(first, 0.0), (second, 0.1)], merged)
    table = read_timeseries(merged)
    assert table.column("timestamp_s").to_pylist() == pytest.approx([0.0, 0.1, 0.15, 0.2])
    assert table.column("gpu_index").to_pylist() == [0, 0, 1, 0]
    assert not merge_timeseries([], tmp_path / "none.parquet")


def test_read_from_a_saved_result_directory_or_its_json(tmp_path: Path) -> None:
    source = tmp_path / "staged.parquet"
    write_timeseries(samples(4), source)
    directory = example_result(timeseries="timeseries.parquet").save(
        tmp_path / "results", timeseries_source=source
    )
    assert read_timeseries(directory).num_rows == 8
    assert read_timeseries(directory / "result.json", columns=["gpu_power_w"]).column_names == [
        "gpu_power_w"
    ]


def test_a_result_without_timeseries_says_so(tmp_path: Path) -> None:
    directory = example_result().save(tmp_path)
    with pytest.raises(PersistenceError, match="this result has no timeseries"):
        read_timeseries(directory)


def test_unreadable_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match=r"nope.parquet: no such timeseries file$"):
        read_timeseries(tmp_path / "nope.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(PersistenceError, match=r"junk.parquet: not a readable timeseries"):
        read_timeseries(junk)
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"a": [1]}), foreign)
    with pytest.raises(PersistenceError, match=r"not an llem timeseries \(columns a\)"):
        read_timeseries(foreign)

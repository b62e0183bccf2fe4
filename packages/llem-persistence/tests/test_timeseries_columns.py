"""write_timeseries of columns (what the sampler collects) writes what rows would."""

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llem_persistence import read_timeseries, write_timeseries
from llem_persistence.timeseries import TimeseriesColumns
from llem_schema import TIMESERIES_COLUMNS, PowerSample

ROWS = [
    PowerSample(0.0, 0, 300.5, 41.0, 1024.0, 90.0, 4),
    PowerSample(0.0, 1, None, None, None, None, None),
    PowerSample(0.1, 0, 301.25, 41.5, 2048.0, 95.0, 2**63 + 1),
    PowerSample(0.1, 1, 120.0, None, 512.0, 0.0, 0),
]
TYPECODES = {"timestamp_s": "d", "gpu_index": "i", "clock_event_reasons": "Q"}


@dataclass
class Columns:
    """Columns laid out as llem_energy's SampleColumns lays them out (or as a test says)."""

    values: dict[str, Sequence[Any]] = field(default_factory=dict)
    present: dict[str, Sequence[int]] = field(default_factory=dict)


def typed_columns(rows: Sequence[PowerSample]) -> Columns:
    """``array.array`` columns, 0 and a 0 flag where a value is None: the shared path."""
    columns = Columns()
    for name in TIMESERIES_COLUMNS:
        values = [getattr(row, name) for row in rows]
        columns.values[name] = array(TYPECODES.get(name, "d"), [v or 0 for v in values])
        if name not in ("timestamp_s", "gpu_index"):
            columns.present[name] = array("B", [v is not None for v in values])
    return columns


def as_rows(path: Path) -> list[dict[str, Any]]:
    table = read_timeseries(path)
    assert tuple(table.column_names) == TIMESERIES_COLUMNS
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def test_typed_columns_write_the_same_file_content_as_rows(tmp_path: Path) -> None:
    assert write_timeseries(ROWS, tmp_path / "rows.parquet")
    assert write_timeseries(typed_columns(ROWS), tmp_path / "columns.parquet")
    from_rows = read_timeseries(tmp_path / "rows.parquet")
    from_columns = read_timeseries(tmp_path / "columns.parquet")
    assert from_columns.equals(from_rows)
    assert from_columns.to_pylist() == [
        {name: getattr(sample, name) for name in TIMESERIES_COLUMNS} for sample in ROWS
    ]


def test_columns_of_other_layouts_are_converted(tmp_path: Path) -> None:
    columns = Columns(
        values={
            name: [getattr(row, name) for row in ROWS] for name in TIMESERIES_COLUMNS
        },  # plain lists, None and all
    )
    columns.values["gpu_index"] = array("q", [0, 1, 0, 1])  # 8 bytes, not int32's 4
    columns.values["gpu_power_w"] = array("f", [300.5, 0.0, 301.25, 120.0])  # float32
    columns.present["gpu_power_w"] = [1, 0, 1, 1]
    assert write_timeseries(columns, tmp_path / "t.parquet")
    assert as_rows(tmp_path / "t.parquet") == [
        {name: getattr(sample, name) for name in TIMESERIES_COLUMNS} for sample in ROWS
    ]


def test_shared_columns_can_grow_again_once_written(tmp_path: Path) -> None:
    columns = typed_columns(ROWS)
    write_timeseries(columns, tmp_path / "t.parquet")
    for column in [*columns.values.values(), *columns.present.values()]:
        column.append(0)  # type: ignore[attr-defined]  # BufferError if still shared


def test_empty_columns_write_nothing(tmp_path: Path) -> None:
    assert not write_timeseries(typed_columns([]), tmp_path / "t.parquet")
    assert not (tmp_path / "t.parquet").exists()


def test_missing_or_uneven_columns_are_refused(tmp_path: Path) -> None:
    columns = typed_columns(ROWS)
    del columns.values["gpu_utilization_pct"]
    with pytest.raises(ValueError, match="timeseries columns missing: gpu_utilization_pct"):
        write_timeseries(columns, tmp_path / "t.parquet")
    columns = typed_columns(ROWS)
    columns.present["gpu_power_w"] = array("B", [1, 1])
    with pytest.raises(ValueError, match="column gpu_power_w does not have 4 rows"):
        write_timeseries(columns, tmp_path / "t.parquet")
    assert not (tmp_path / "t.parquet").exists()


def test_rows_and_mappings_are_not_taken_for_columns() -> None:
    candidates: list[object] = [ROWS, {"timestamp_s": [0.0]}, iter(ROWS)]
    assert isinstance(typed_columns(ROWS), TimeseriesColumns)
    assert not any(isinstance(candidate, TimeseriesColumns) for candidate in candidates)

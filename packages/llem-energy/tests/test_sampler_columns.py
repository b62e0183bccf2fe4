"""The sampler keeps its samples as columns; rows are built from them on demand."""

from array import array

import pynvml
import pytest

from llem_energy import NvmlSession, PowerSampler
from llem_energy.sampler import SampleColumns
from llem_energy.testing import FakeNvml, ManualClock
from llem_schema import TIMESERIES_COLUMNS, PowerSample

ROWS = [
    PowerSample(0.0, 0, 300.5, 41.0, 1024.0, 90.0, 4),
    PowerSample(0.0, 1, None, None, None, None, None),
    PowerSample(0.1, 0, 301.25, 41.5, 2048.0, 95.0, 2**63 + 1),
]


def _columns(rows: list[PowerSample]) -> SampleColumns:
    columns = SampleColumns()
    for row in rows:
        columns.append(row)
    return columns


def test_rows_come_back_as_appended_with_none_where_absent() -> None:
    columns = _columns(ROWS)
    assert len(columns) == 3
    assert columns.rows() == ROWS
    assert tuple(columns.values) == TIMESERIES_COLUMNS
    assert columns.values["gpu_power_w"].tolist() == [300.5, 0.0, 301.25]
    assert columns.present["gpu_power_w"].tolist() == [1, 0, 1]
    assert "timestamp_s" not in columns.present
    assert "gpu_index" not in columns.present


def test_columns_are_typed_arrays_a_writer_can_share() -> None:
    values = _columns(ROWS).values
    assert {name: column.typecode for name, column in values.items()} == {
        "timestamp_s": "d",
        "gpu_index": "i",
        "gpu_power_w": "d",
        "gpu_temperature_c": "d",
        "gpu_memory_used_mb": "d",
        "gpu_utilization_pct": "d",
        "clock_event_reasons": "Q",
    }
    assert values["gpu_index"].itemsize == 4
    assert values["clock_event_reasons"].itemsize == 8


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (PowerSample(0.2, 0, 300.0, 41.0, clock_event_reasons=-1), OverflowError),
        (PowerSample(0.2, 0, 300.0, 41.0, clock_event_reasons=4.5), TypeError),  # type: ignore[arg-type]
        (PowerSample(0.2, 0, "300 W", 41.0), TypeError),  # type: ignore[arg-type]
    ],
)
def test_a_row_a_column_cannot_hold_is_refused_whole(
    bad: PowerSample, error: type[Exception]
) -> None:
    columns = _columns(ROWS)
    with pytest.raises(error):
        columns.append(bad)
    assert {len(c) for c in [*columns.values.values(), *columns.present.values()]} == {3}
    assert columns.rows() == ROWS


def test_a_copy_is_independent_and_equal() -> None:
    columns = _columns(ROWS)
    copy = columns.copy()
    assert copy == columns
    copy.append(ROWS[0])
    assert len(columns) == 3
    assert len(copy) == 4
    assert copy != columns
    assert repr(copy) == "SampleColumns(4 rows)"


def test_the_sampler_hands_out_columns_and_the_same_rows(clock: ManualClock) -> None:
    fake = FakeNvml.with_gpus(2, clock=clock)
    fake.gpus[1].failures["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler([session.device(0), session.device(1)], rate_hz=0.001, clock=clock)
        sampler.start(clock())
        clock.sleep(0.5)
        sampler.sample_once()
        result = sampler.stop()
    assert len(result.columns) == 6
    assert result.columns.values["gpu_index"] == array("i", [0, 1, 0, 1, 0, 1])
    assert result.columns.present["gpu_temperature_c"] == array("B", [1, 0, 1, 0, 1, 0])
    assert result.samples == result.columns.rows()
    assert [s.gpu_temperature_c is None for s in result.samples] == [False, True] * 3
    assert result.samples is result.samples  # built once


def test_the_result_keeps_its_columns_when_the_sampler_runs_again(clock: ManualClock) -> None:
    fake = FakeNvml.with_gpus(1, clock=clock)
    with NvmlSession.open(fake) as session:
        sampler = PowerSampler([session.device(0)], rate_hz=0.001, clock=clock)
        sampler.start(clock())
        first = sampler.stop()
        sampler.start(clock())
        second = sampler.stop()
    assert len(first.columns) == 2
    assert len(second.columns) == 4  # a sampler started again goes on adding rows

"""The power/temperature timeseries sidecar: one Parquet row per sample per device.

Columns (see :data:`llem_schema.TIMESERIES_COLUMNS`): ``timestamp_s`` (float64, seconds from
the window's start), ``gpu_index`` (int32, NVML index), ``gpu_power_w`` and
``gpu_temperature_c`` (float64), then memory, utilisation and clock-event reasons. Cumulative
energy is derived at analysis time, never stored. Files are zstd-compressed and written
atomically.
"""

from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llem_persistence.errors import PersistenceError
from llem_schema import RESULT_FILE, TIMESERIES_COLUMNS, ExperimentResult, PowerSample
from llem_schema.io import atomic_path

__all__ = ["TIMESERIES_SCHEMA", "merge_timeseries", "read_timeseries", "write_timeseries"]

_FIELDS: "Final[list[pa.Field[Any]]]" = [
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("gpu_index", pa.int32(), nullable=False),
    pa.field("gpu_power_w", pa.float64()),
    pa.field("gpu_temperature_c", pa.float64()),
    pa.field("gpu_memory_used_mb", pa.float64()),
    pa.field("gpu_utilization_pct", pa.float64()),
    pa.field("clock_event_reasons", pa.uint64()),
]
TIMESERIES_SCHEMA: Final = pa.schema(
    _FIELDS, metadata={"llem.timestamp_s": "seconds from the start of the measurement window"}
)
assert tuple(TIMESERIES_SCHEMA.names) == TIMESERIES_COLUMNS, "schema and PowerSample disagree"

_COMPRESSION: Final = "zstd"


def _table(samples: Sequence[PowerSample]) -> pa.Table:
    columns = {name: [getattr(sample, name) for sample in samples] for name in TIMESERIES_COLUMNS}
    return pa.Table.from_pydict(columns, schema=TIMESERIES_SCHEMA)


def _write(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary, compression=_COMPRESSION)


def write_timeseries(samples: Iterable[PowerSample], path: str | PathLike[str]) -> bool:
    """Write ``samples`` to ``path`` atomically; returns False (writing nothing) if empty."""
    rows = list(samples)
    if not rows:
        return False
    _write(_table(rows), Path(path))
    return True


def merge_timeseries(
    sources: Iterable[tuple[str | PathLike[str], float]], path: str | PathLike[str]
) -> bool:
    """Merge per-process sidecars into one, shifting each by its offset in seconds.

    Each process measures time from its own window start; ``offset_s`` is that start minus
    the experiment's earliest start, so merged timestamps share one origin. Rows are sorted
    by time, then device. Returns False (writing nothing) when no source has rows.
    """
    tables = []
    for source, offset_s in sources:
        table = _read_file(Path(source))
        shifted = pc.add(table["timestamp_s"], pa.scalar(offset_s, pa.float64()))
        tables.append(table.set_column(0, "timestamp_s", shifted))
    merged = pa.concat_tables(tables) if tables else _table([])
    if merged.num_rows == 0:
        return False
    _write(merged.sort_by([("timestamp_s", "ascending"), ("gpu_index", "ascending")]), Path(path))
    return True


def read_timeseries(
    source: str | PathLike[str], *, columns: Sequence[str] | None = None
) -> pa.Table:
    """Read a timeseries from its Parquet file, a result directory, or its ``result.json``."""
    path = Path(source)
    if path.is_dir():
        path = path / RESULT_FILE
    if path.name == RESULT_FILE:
        result = ExperimentResult.from_json(path)
        if result.timeseries is None:
            raise PersistenceError(
                f"{path.parent}: this result has no timeseries (energy was not sampled)"
            )
        path = path.parent / result.timeseries
    return _read_file(path, columns)


def _read_file(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    except FileNotFoundError:
        raise PersistenceError(f"{path}: no such timeseries file") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise PersistenceError(f"{path}: not a readable timeseries: {exc}") from None
    if columns is None and tuple(table.schema.names[:4]) != TIMESERIES_COLUMNS[:4]:
        raise PersistenceError(
            f"{path}: not an llem timeseries (columns {', '.join(table.schema.names[:4])})"
        )
    return table

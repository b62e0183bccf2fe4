"""The power/temperature timeseries sidecar: one Parquet row per sample per device.

Columns (see :data:`llem_schema.TIMESERIES_COLUMNS`): ``timestamp_s`` (float64, seconds from
the window's start), ``gpu_index`` (int32, NVML index), ``gpu_power_w`` and
``gpu_temperature_c`` (float64), then memory, utilisation and clock-event reasons. Cumulative
energy is derived at analysis time, never stored. Files are zstd-compressed and written
atomically.

:func:`write_timeseries` takes rows (``PowerSample`` s) or columns (:class:`TimeseriesColumns`,
what ``llem_energy``'s sampler collects): columns held in ``array.array`` s of the column's
type become Arrow arrays without a copy, so writing them costs about what ``pq.write_table``
of a ready table does, where rows cost a Python conversion of every value first.
"""

import json
import warnings
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Final, Protocol, cast, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llem_persistence.errors import PersistenceError
from llem_schema import RESULT_FILE, TIMESERIES_COLUMNS, ExperimentResult, LlemError, PowerSample
from llem_schema.io import atomic_path

__all__ = [
    "TIMESERIES_SCHEMA",
    "DeviceSeries",
    "TimeseriesColumns",
    "check_timeseries",
    "export_timeseries",
    "merge_timeseries",
    "read_timeseries",
    "summarize_timeseries",
    "write_timeseries",
]

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
_DICTIONARY: Final = [
    "gpu_index",
    "gpu_temperature_c",
    "gpu_memory_used_mb",
    "gpu_utilization_pct",
    "clock_event_reasons",
]
"""The columns with few distinct values, dictionary-encoded. Timestamps (all distinct) and
power (mostly distinct) are not: Parquet would build a dictionary only to give it up, about
a fifth of the time of writing bench/bench_persistence.py's 1,000,000 rows."""


@runtime_checkable
class TimeseriesColumns(Protocol):
    """Samples as columns (``llem_energy``'s sampler hands these out as
    ``SamplerResult.columns``).

    ``values[name]``, for every name of ``TIMESERIES_COLUMNS``, holds that column's value for
    each row; ``present[name]``, where given, a flag for each row: 0 where the row has no
    value (None), whatever ``values`` holds there. A column held as an ``array.array`` of
    its type (type code ``"d"`` for float64, a 4-byte signed one for ``gpu_index``, an 8-byte
    unsigned one for ``clock_event_reasons``, flags as ``"B"``) is written without a copy,
    and cannot grow while it is written; any other sequence is converted value by value.
    """

    @property
    def values(self) -> Mapping[str, Sequence[Any]]: ...

    @property
    def present(self) -> Mapping[str, Sequence[int]]: ...


def _table(samples: Sequence[PowerSample]) -> pa.Table:
    columns = {name: [getattr(sample, name) for sample in samples] for name in TIMESERIES_COLUMNS}
    return pa.Table.from_pydict(columns, schema=TIMESERIES_SCHEMA)


def _column_table(columns: TimeseriesColumns) -> pa.Table:
    missing = [name for name in TIMESERIES_COLUMNS if name not in columns.values]
    if missing:
        raise ValueError(f"timeseries columns missing: {', '.join(missing)}")
    rows = len(columns.values[TIMESERIES_COLUMNS[0]])
    arrays = [
        _arrow_column(field, columns.values[field.name], columns.present.get(field.name), rows)
        for field in _FIELDS
    ]
    return pa.Table.from_arrays(arrays, schema=TIMESERIES_SCHEMA)


def _arrow_column(
    field: "pa.Field[Any]", values: Sequence[Any], present: Sequence[int] | None, rows: int
) -> "pa.Array[Any]":
    if len(values) != rows or (present is not None and len(present) != rows):
        raise ValueError(f"timeseries column {field.name} does not have {rows} rows")
    data = _shared(values, field.type) or pa.array(values, type=field.type)
    if present is None:
        return data
    flags = _shared(present, pa.uint8()) or pa.array(present, type=pa.uint8())
    has_value = pc.not_equal(flags, pa.scalar(0, pa.uint8()))
    return cast("pa.Array[Any]", pc.if_else(has_value, data, pa.scalar(None, field.type)))


def _shared(values: Sequence[Any], arrow_type: "pa.DataType") -> "pa.Array[Any] | None":
    """``values`` as an Arrow array over the same memory, where it is an ``array.array``
    laid out as ``arrow_type``; else None."""
    if not isinstance(values, array) or values.itemsize * 8 != arrow_type.bit_width:
        return None
    if pa.types.is_floating(arrow_type):
        codes = "fd"
    elif pa.types.is_signed_integer(arrow_type):
        codes = "bhilq"
    else:
        codes = "BHILQ"
    if values.typecode not in codes:
        return None
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def _write(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as temporary:
        pq.write_table(
            table,
            temporary,
            compression=_COMPRESSION,
            # pyarrow takes a list of columns here; pyarrow-stubs types the argument as bool
            use_dictionary=_DICTIONARY,  # type: ignore[arg-type]
        )


def write_timeseries(
    samples: Iterable[PowerSample] | TimeseriesColumns, path: str | PathLike[str]
) -> bool:
    """Write ``samples``, rows or columns, to ``path`` atomically; returns False (writing
    nothing) if there are none."""
    if isinstance(samples, TimeseriesColumns):
        table = _column_table(samples)
    else:
        table = _table(list(samples))
    if table.num_rows == 0:
        return False
    _write(table, Path(path))
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


def check_timeseries(result_dir: str | PathLike[str]) -> str | None:
    """What is wrong with the timeseries sidecar a result names, or ``None``: the file is
    there, reads as an llem timeseries, and holds samples of as many GPUs as the result
    integrated power for. A result that names no sidecar has nothing to check."""
    directory = Path(result_dir)
    file = directory / RESULT_FILE
    try:
        name = json.loads(file.read_bytes()).get("timeseries")
        with warnings.catch_warnings():  # the sidecar missing: reported below, in one line
            warnings.simplefilter("ignore")
            result = ExperimentResult.from_json(file)
    except (OSError, ValueError, AttributeError, LlemError) as exc:
        return f"{file}: unreadable ({exc})"
    if not isinstance(name, str):
        return None
    path = directory / name
    try:
        table = _read_file(path, ["gpu_index"])
    except PersistenceError as exc:
        return str(exc)
    sampled = {
        e.device_uuid
        for p in result.process_results
        for e in p.energy
        if e.domain == "gpu" and e.integrated_energy_j is not None
    }
    devices = len(pc.unique(table.column("gpu_index")))
    if table.num_rows == 0 and sampled:
        return f"{path}: no samples, though the result integrated power of {len(sampled)} GPUs"
    if devices != len(sampled):
        return (
            f"{path}: samples of {devices} GPUs ({table.num_rows} rows), but the result "
            f"integrated power of {len(sampled)}"
        )
    return None


@dataclass(frozen=True)
class DeviceSeries:
    """What a timeseries holds of one GPU (see :func:`summarize_timeseries`)."""

    gpu_index: int
    samples: int
    first_s: float
    last_s: float
    rate_hz: float | None
    """Samples per second achieved over the stretch sampled; None for fewer than two."""
    longest_gap_s: float | None
    """The longest time between two successive samples."""
    mean_power_w: float | None
    max_power_w: float | None
    max_temperature_c: float | None
    window_energy_j: float | None
    """Power integrated (trapezoids) over the samples inside the energy window, from 0 s to
    ``window_s``; None without two such samples with power."""


def summarize_timeseries(table: pa.Table, *, window_s: float | None = None) -> list[DeviceSeries]:
    """Per GPU, in index order: samples, their span and achieved rate, the longest gap,
    power and temperature, and the energy integrated over ``[0, window_s]`` (the whole
    sampled span where ``window_s`` is None)."""
    if table.num_rows == 0:
        return []
    times = table.column("timestamp_s").to_numpy(zero_copy_only=False).astype(float)
    indices = table.column("gpu_index").to_numpy(zero_copy_only=False)
    power = table.column("gpu_power_w").to_numpy(zero_copy_only=False).astype(float)
    temperature = table.column("gpu_temperature_c").to_numpy(zero_copy_only=False).astype(float)
    devices = []
    for index in sorted(set(indices.tolist())):
        mine = indices == index
        order = np.argsort(times[mine], kind="stable")
        t, w, c = times[mine][order], power[mine][order], temperature[mine][order]
        steps = np.diff(t)
        inside = (t >= 0.0) & (t <= (window_s if window_s is not None else t[-1]))
        known = inside & ~np.isnan(w)
        devices.append(
            DeviceSeries(
                gpu_index=int(index),
                samples=len(t),
                first_s=float(t[0]),
                last_s=float(t[-1]),
                rate_hz=float((len(t) - 1) / (t[-1] - t[0]))
                if len(t) > 1 and t[-1] > t[0]
                else None,
                longest_gap_s=float(steps.max()) if len(steps) else None,
                mean_power_w=_finite(np.nanmean(w)) if (~np.isnan(w)).any() else None,
                max_power_w=_finite(np.nanmax(w)) if (~np.isnan(w)).any() else None,
                max_temperature_c=_finite(np.nanmax(c)) if (~np.isnan(c)).any() else None,
                window_energy_j=(
                    float(np.trapezoid(w[known], t[known])) if known.sum() >= 2 else None
                ),
            )
        )
    return devices


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def export_timeseries(table: pa.Table, path: str | PathLike[str]) -> None:
    """Write a timeseries ``table`` to ``path``, ``.parquet`` or ``.csv`` by its suffix (CSV
    for a spreadsheet; Parquet keeps the types), atomically."""
    import pyarrow.csv as pacsv

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise PersistenceError(f"cannot tell how to write {target}: name it .parquet or .csv")
    with atomic_path(target) as temporary:
        if suffix == ".csv":
            pacsv.write_csv(table, temporary)
        else:
            pq.write_table(table, temporary, compression="zstd")

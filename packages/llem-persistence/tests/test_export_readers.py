"""Exports as analysts read them: pandas, DuckDB and polars, each with its own type guessing.

What each reader makes of the CSV text is asserted as it is, the CSV limits included, so
``docs/exports.md`` says what a user really gets; the typed recipes there are run here.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb
import pandas as pd
import polars as pl
import pytest

from llem_persistence.exporters import SUMMARY_COLUMNS, export_csv, export_parquet, export_xlsx
from llem_schema import EnvironmentSnapshot, ExperimentResult
from llem_schema.testing import example_raw_result, example_result

START: Final = datetime(2026, 12, 2, 16, 0, 41, 123456, tzinfo=UTC)
ENERGY_COLUMNS: Final = ("total_energy_j", "gpu_energy_j", "efficiency_output_tokens_per_j")

# The recipes of docs/exports.md: each reader's type for each column kind.
DUCKDB_TYPES: Final = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}
PANDAS_TYPES: Final = {
    "string": "string",
    "int64": "Int64",
    "float64": "float64",
    "bool": "boolean",
}
POLARS_TYPES: Final[dict[str, pl.DataType | type[pl.DataType]]] = {
    "string": pl.String,
    "int64": pl.Int64,
    "float64": pl.Float64,
    "bool": pl.Boolean,
    "timestamp": pl.Datetime("us", "UTC"),
}


def _snapshot(cuda_version: str) -> EnvironmentSnapshot:
    return EnvironmentSnapshot(
        collected_at=START,
        hostname="gpu-node-7",
        os="Linux 6.8",
        python_version="3.11.7",
        driver_version="390.150",
        cuda_version=cuda_version,
    )


def _energy_off() -> ExperimentResult:
    """A run with energy off: every energy column is missing. Its version is pinned (1.3, a
    version a number keeps) so that what the readers make of it does not move with llem's."""
    result = example_result([example_raw_result(energy_j=None, start_time=START, seed=2)])
    return result.model_copy(update={"schema_version": "1.3"})


def _two_versions() -> list[ExperimentResult]:
    """Two rows whose versions a number would garble: 1.3 and 1.10, CUDA 13.0 and 12.10."""
    first = _energy_off().model_copy(update={"environment_snapshot": _snapshot("13.0")})
    second = first.model_copy(
        update={
            "experiment_id": "second_2026-12-02",
            "schema_version": "1.10",  # a future minor version, as the issue feared
            "environment_snapshot": _snapshot("12.10"),
        }
    )
    return [first, second]


@pytest.fixture
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        yield connection


def _duckdb_types(connection: duckdb.DuckDBPyConnection, query: str) -> dict[str, str]:
    return {str(row[0]): str(row[1]) for row in connection.sql(f"DESCRIBE {query}").fetchall()}


def test_versions_are_text_to_every_reader(
    tmp_path: Path, connection: duckdb.DuckDBPyConnection
) -> None:
    target = tmp_path / "results.csv"
    export_csv(_two_versions(), target)
    expected = {
        "schema_version": ["v1.3", "v1.10"],
        "environment_snapshot_cuda_version": ["v13.0", "v12.10"],
        "environment_snapshot_driver_version": ["v390.150", "v390.150"],
    }
    lines = target.read_text(encoding="utf-8").splitlines()
    assert ",v1.3," in lines[1]
    assert ",v1.10," in lines[2]

    frame = pd.read_csv(target)
    for name, values in expected.items():
        assert pd.api.types.is_string_dtype(frame[name]), name
        assert frame[name].tolist() == values

    query = f"SELECT * FROM read_csv('{target}')"
    types = _duckdb_types(connection, query)
    rows = connection.sql(f"SELECT {', '.join(expected)} FROM read_csv('{target}')").fetchall()
    for index, (name, values) in enumerate(expected.items()):
        assert types[name] == "VARCHAR", name
        assert [row[index] for row in rows] == values

    table = pl.read_csv(target)
    for name, values in expected.items():
        assert table.schema[name] == pl.String, name
        assert table[name].to_list() == values


def test_a_bare_version_would_be_a_number(tmp_path: Path) -> None:
    """Why the ``v``: the bare form, quoted or not, is a number to the readers (1.10 -> 1.1)."""
    target = tmp_path / "bare.csv"
    target.write_text('schema_version,quoted\n1.3,"1.3"\n1.10,"1.10"\n', encoding="utf-8")
    assert pd.read_csv(target)["quoted"].tolist() == [1.3, 1.1]
    assert pl.read_csv(target)["schema_version"].to_list() == [1.3, 1.1]


def test_timestamps_are_iso_8601_utc_and_read_back_as_the_instant(
    tmp_path: Path, connection: duckdb.DuckDBPyConnection
) -> None:
    target = tmp_path / "results.csv"
    export_csv([_energy_off()], target)
    frame = pd.read_csv(target, parse_dates=["start_time_utc"])
    assert frame["start_time_utc"][0] == pd.Timestamp(START)
    assert str(frame["start_time_utc"].dtype) == "datetime64[us, UTC]"
    # the text itself: ISO 8601, microseconds, the offset; never naive or in a locale's form
    assert pd.read_csv(target)["start_time_utc"][0] == "2026-12-02T16:00:41.123456+00:00"

    query = f"SELECT start_time_utc FROM read_csv('{target}')"
    assert _duckdb_types(connection, query) == {"start_time_utc": "TIMESTAMP WITH TIME ZONE"}
    assert connection.sql(query).fetchall() == [(START,)]

    table = pl.read_csv(target, try_parse_dates=True)
    assert table.schema["start_time_utc"] == pl.Datetime("us", "UTC")
    assert table["start_time_utc"].to_list() == [START]


def test_an_all_empty_numeric_column_needs_its_type_from_the_reader(
    tmp_path: Path, connection: duckdb.DuckDBPyConnection
) -> None:
    """CSV cannot say an empty column is numeric: DuckDB and polars guess text, pandas float.
    Given the types of SUMMARY_COLUMNS (the docs' recipe), every reader reads numbers."""
    target = tmp_path / "energy_off.csv"
    export_csv([_energy_off()], target)
    header, row = target.read_text(encoding="utf-8").splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert [cells[name] for name in ENERGY_COLUMNS] == ["", "", ""]

    # guessed: what CSV alone gives
    guessed = _duckdb_types(connection, f"SELECT * FROM read_csv('{target}')")
    assert [guessed[name] for name in ENERGY_COLUMNS] == ["VARCHAR"] * 3
    assert [pl.read_csv(target).schema[name] for name in ENERGY_COLUMNS] == [pl.String] * 3
    assert all(pd.read_csv(target)[name].dtype == "float64" for name in ENERGY_COLUMNS)

    # told: the recipes of docs/exports.md
    duck_types = {column.name: DUCKDB_TYPES[column.kind] for column in SUMMARY_COLUMNS}
    relation = connection.read_csv(str(target), dtype=duck_types)
    told = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert [told[name] for name in ENERGY_COLUMNS] == ["DOUBLE"] * 3
    shown = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}  # DuckDB's long name for it
    assert told == {name: shown.get(kind, kind) for name, kind in duck_types.items()}
    sums = connection.sql(
        f"SELECT sum(gpu_energy_j), count(*) FROM read_csv('{target}', "
        "types = {'gpu_energy_j': 'DOUBLE'})"
    ).fetchall()
    assert sums == [(None, 1)]

    schema = {column.name: POLARS_TYPES[column.kind] for column in SUMMARY_COLUMNS}
    table = pl.read_csv(target, schema=schema)
    assert [table.schema[name] for name in ENERGY_COLUMNS] == [pl.Float64] * 3
    assert table["gpu_energy_j"].to_list() == [None]
    assert table["schema_version"].to_list() == ["v1.3"]
    assert table["start_time_utc"].to_list() == [START]
    one = pl.read_csv(target, schema_overrides={"gpu_energy_j": pl.Float64}, try_parse_dates=True)
    assert one.schema["gpu_energy_j"] == pl.Float64

    frame = pd.read_csv(
        target,
        dtype={c.name: PANDAS_TYPES[c.kind] for c in SUMMARY_COLUMNS if c.kind != "timestamp"},
        parse_dates=[c.name for c in SUMMARY_COLUMNS if c.kind == "timestamp"],
    )
    assert [str(frame[name].dtype) for name in ENERGY_COLUMNS] == ["float64"] * 3
    assert str(frame["config_batch_size"].dtype) == "Int64"
    assert str(frame["thermal_throttle_detected"].dtype) == "boolean"
    assert str(frame["start_time_utc"].dtype) == "datetime64[us, UTC]"
    assert frame["schema_version"].str.removeprefix("v").tolist() == ["1.3"]


def test_parquet_keeps_the_type_of_an_all_empty_column(
    tmp_path: Path, connection: duckdb.DuckDBPyConnection
) -> None:
    target = tmp_path / "energy_off.parquet"
    export_parquet([_energy_off()], target)
    types = _duckdb_types(connection, f"SELECT * FROM read_parquet('{target}')")
    assert [types[name] for name in ENERGY_COLUMNS] == ["DOUBLE"] * 3
    assert types["schema_version"] == "VARCHAR"
    table = pl.read_parquet(target)
    assert [table.schema[name] for name in ENERGY_COLUMNS] == [pl.Float64] * 3
    assert table["schema_version"].to_list() == ["1.3"]
    frame = pd.read_parquet(target)
    assert all(frame[name].dtype == "float64" for name in ENERGY_COLUMNS)
    assert frame["schema_version"].tolist() == ["1.3"]


def test_xlsx_keeps_versions_as_text_cells_which_pandas_must_be_told(tmp_path: Path) -> None:
    """Excel shows the text cell ``1.10`` as written; pandas' read_excel guesses 1.1 unless told."""
    target = tmp_path / "results.xlsx"
    export_xlsx(_two_versions(), target)
    guessed = pd.read_excel(target, sheet_name="summary")
    assert guessed["schema_version"].tolist() == [1.3, 1.1]
    told = pd.read_excel(target, sheet_name="summary", dtype={"schema_version": str})
    assert told["schema_version"].tolist() == ["1.3", "1.10"]
    # an Excel date cell: UTC without a zone, to the millisecond
    in_excel = pd.Timestamp(START.replace(tzinfo=None, microsecond=123000))
    assert told["start_time_utc"].tolist() == [in_excel] * 2

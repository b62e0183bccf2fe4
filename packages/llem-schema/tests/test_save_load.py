import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llem_schema import (
    SCHEMA_VERSION,
    ExperimentResult,
    LlemError,
    LlemWarning,
    RequestRecord,
    RequestTiming,
    ResultFormatError,
    SchemaVersionError,
)
from llem_schema.testing import example_config, example_raw_result, example_result


def _sidecar(tmp_path: Path) -> Path:
    source = tmp_path / "staged.parquet"
    source.write_bytes(b"PAR1 not really parquet, but bytes to copy PAR1")
    return source


def test_save_creates_a_named_directory_with_result_json(tmp_path: Path) -> None:
    result = example_result()
    directory = result.save(tmp_path / "results")
    assert directory.name == "tiny_pytorch_2026-11-22T14-03-05_0a1b2c"  # the experiment id
    assert sorted(p.name for p in directory.iterdir()) == ["result.json"]
    assert json.loads((directory / "result.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_the_directory_is_named_by_the_experiment_id(tmp_path: Path) -> None:
    """One name for one experiment: what ``llem run`` prints is what the store knows."""
    result = example_result().model_copy(update={"experiment_id": "llama_pytorch_x_123abc"})
    assert result.directory_name() == "llama_pytorch_x_123abc"
    assert result.save(tmp_path).name == "llama_pytorch_x_123abc"


def test_save_never_overwrites_it_adds_suffixes(tmp_path: Path) -> None:
    result = example_result()
    names = [result.save(tmp_path).name for _ in range(3)]
    assert names == [
        "tiny_pytorch_2026-11-22T14-03-05_0a1b2c",
        "tiny_pytorch_2026-11-22T14-03-05_0a1b2c_1",
        "tiny_pytorch_2026-11-22T14-03-05_0a1b2c_2",
    ]


def test_round_trip_from_the_directory_and_from_the_file(tmp_path: Path) -> None:
    result = example_result()
    directory = result.save(tmp_path)
    assert ExperimentResult.from_json(directory) == result
    assert ExperimentResult.from_json(directory / "result.json") == result


def test_sidecar_is_copied_beside_result_json_and_named_relatively(tmp_path: Path) -> None:
    result = example_result(timeseries="timeseries.parquet")
    source = _sidecar(tmp_path)
    directory = result.save(tmp_path / "out", timeseries_source=source)
    assert (directory / "timeseries.parquet").read_bytes() == source.read_bytes()
    loaded = ExperimentResult.from_json(directory)
    assert loaded == result
    assert loaded.timeseries == "timeseries.parquet"


def test_a_sidecar_given_to_a_result_without_one_is_named_in_the_saved_file(
    tmp_path: Path,
) -> None:
    directory = example_result().save(tmp_path, timeseries_source=_sidecar(tmp_path))
    assert ExperimentResult.from_json(directory).timeseries == "timeseries.parquet"


def test_moved_directory_still_finds_its_sidecar(tmp_path: Path) -> None:
    result = example_result(timeseries="timeseries.parquet")
    directory = result.save(tmp_path / "a", timeseries_source=_sidecar(tmp_path))
    moved = directory.rename(tmp_path / "elsewhere")
    assert ExperimentResult.from_json(moved).timeseries == "timeseries.parquet"


def test_missing_sidecar_loads_with_none_and_a_warning(tmp_path: Path) -> None:
    result = example_result(timeseries="timeseries.parquet")
    directory = result.save(tmp_path, timeseries_source=_sidecar(tmp_path))
    (directory / "timeseries.parquet").unlink()
    with pytest.warns(LlemWarning, match="timeseries sidecar 'timeseries.parquet' is missing"):
        loaded = ExperimentResult.from_json(directory)
    assert loaded.timeseries is None
    assert loaded.model_copy(update={"timeseries": "timeseries.parquet"}) == result


def test_saving_a_result_that_names_a_sidecar_needs_its_source(tmp_path: Path) -> None:
    with pytest.raises(LlemError, match="pass timeseries_source="):
        example_result(timeseries="timeseries.parquet").save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_sidecar_source_is_an_error_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(LlemError, match=r"timeseries source .*nope.parquet does not exist"):
        example_result().save(tmp_path / "out", timeseries_source=tmp_path / "nope.parquet")
    assert not (tmp_path / "out").exists()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "result.json"
    path.write_text(text)
    return path


def test_corrupt_json_is_one_line_naming_the_file_and_where(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"schema_version": "1.0", "experiment_id": ')
    with pytest.raises(ResultFormatError) as caught:
        ExperimentResult.from_json(path)
    assert (
        str(caught.value)
        == f"{path}: corrupt result: invalid JSON at line 1, column 44 (Expecting value)"
    )


def test_a_file_that_is_not_a_result(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"model": "gpt2", "n": 10}')
    with pytest.raises(
        ResultFormatError, match=r"result.json: not an llem result \(no schema_version\)$"
    ):
        ExperimentResult.from_json(path)


def test_a_result_with_a_bad_field_names_the_field(tmp_path: Path) -> None:
    document = json.loads(example_result().model_dump_json())
    document["output_tokens"] = "many"
    path = _write(tmp_path, json.dumps(document))
    with pytest.raises(ResultFormatError) as caught:
        ExperimentResult.from_json(path)
    assert str(caught.value).startswith(f"{path}: invalid result: output_tokens: Input should be")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultFormatError, match=r"result.json: no such file$"):
        ExperimentResult.from_json(tmp_path)


def test_a_newer_major_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    document = json.loads(example_result().model_dump_json()) | {"schema_version": "2.0"}
    path = _write(tmp_path, json.dumps(document))
    with pytest.raises(SchemaVersionError) as caught:
        ExperimentResult.from_json(path)
    assert str(caught.value) == (
        f"{path}: written with llem schema 2.0, newer than {SCHEMA_VERSION} which this "
        "llem-schema reads; upgrade llem-schema (pip install -U llem-schema)"
    )


def test_a_newer_minor_version_loads_when_it_only_uses_known_fields(tmp_path: Path) -> None:
    document = json.loads(example_result().model_dump_json()) | {"schema_version": "1.7"}
    path = _write(tmp_path, json.dumps(document))
    assert ExperimentResult.from_json(path).schema_version == "1.7"
    document["carbon_g"] = 12.0
    _write(tmp_path, json.dumps(document))
    with pytest.raises(SchemaVersionError, match=re.escape("written with llem schema 1.7")):
        ExperimentResult.from_json(path)


def test_a_malformed_version_is_refused(tmp_path: Path) -> None:
    document = json.loads(example_result().model_dump_json()) | {"schema_version": "v1"}
    path = _write(tmp_path, json.dumps(document))
    with pytest.raises(
        ResultFormatError, match=re.escape("schema_version 'v1' is not of the form 'major.minor'")
    ):
        ExperimentResult.from_json(path)


def test_thirty_two_threads_saving_the_same_name_get_distinct_directories(tmp_path: Path) -> None:
    result = example_result()
    barrier = threading.Barrier(32)

    def save(_: int) -> Path:
        barrier.wait()
        return result.save(tmp_path)

    with ThreadPoolExecutor(max_workers=32) as pool:
        directories = list(pool.map(save, range(32)))
    assert len(set(directories)) == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(d.name for d in directories)
    for directory in directories:
        assert ExperimentResult.from_json(directory) == result


def test_thirty_two_processes_saving_the_same_name_get_distinct_directories(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    out = tmp_path / "results"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from llem_schema.testing import example_result
        result = example_result()
        while not Path({str(go)!r}).exists():
            time.sleep(0.001)
        print(result.save(Path({str(out)!r})))
        """
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(32)
    ]
    time.sleep(0.5)  # let the children import and wait; correctness does not depend on it
    go.touch()
    printed = [child.communicate(timeout=120)[0].strip() for child in children]
    assert [child.returncode for child in children] == [0] * 32
    assert len(set(printed)) == 32
    assert len(list(out.iterdir())) == 32
    expected = example_result()
    for directory in printed:
        assert ExperimentResult.from_json(directory) == expected


# -- property: from_json(save(r)) == r ------------------------------------------------------

_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
_ms = st.floats(min_value=0.0, max_value=5_000.0, allow_nan=False, allow_infinity=False)


@st.composite
def _requests(draw: st.DrawFn, first_index: int) -> list[RequestRecord]:
    records = []
    for offset in range(draw(st.integers(min_value=0, max_value=6))):
        start = draw(st.floats(min_value=0.0, max_value=1e5, allow_nan=False))
        gaps = draw(st.lists(st.floats(min_value=0.0, max_value=2.0, allow_nan=False), max_size=8))
        times: list[float] = []
        for gap in gaps:
            times.append((times[-1] if times else start) + gap)
        timing = RequestTiming(
            request_index=first_index + offset,
            batch_index=offset,
            input_tokens=draw(st.integers(min_value=0, max_value=4096)),
            output_tokens=len(times),
            start_s=start,
            token_times_s=times,
        )
        records.append(RequestRecord.from_timing(timing))
    return records


@st.composite
def results(draw: st.DrawFn) -> ExperimentResult:
    config = example_config(
        model=draw(st.sampled_from(["llem/tiny", "org/Model-7B", "/local/path/ünïcode"])),
        precision=draw(st.sampled_from(["fp32", "fp16", "bf16"])),
        decoder=draw(
            st.sampled_from([{}, {"preset": "creative"}, {"mode": "sampling", "top_k": 7}])
        ),
        name=draw(st.none() | st.text(max_size=20)),
    )
    processes = draw(st.integers(min_value=1, max_value=3))
    with_energy = draw(st.booleans())
    start = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_zones
        )
    )
    raws = [
        example_raw_result(
            config=config,
            process_index=index,
            num_processes=processes,
            energy_j=draw(st.floats(min_value=0.001, max_value=1e7)) if with_energy else None,
            baseline_power_w=draw(st.none() | st.floats(min_value=0.0, max_value=1e3)),
            duration_s=draw(st.floats(min_value=0.001, max_value=1e5)),
            start_time=start + timedelta(microseconds=draw(st.integers(0, 10**7))),
            requests=draw(_requests(first_index=index * 100)),
        )
        for index in range(processes)
    ]
    warnings = draw(st.lists(st.text(max_size=40), max_size=3))
    timeseries = draw(st.sampled_from([None, "timeseries.parquet", "power samples.parquet"]))
    return example_result(raws, config=config, timeseries=timeseries, measurement_warnings=warnings)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(result=results())
def test_from_json_of_save_equals_the_original(tmp_path: Path, result: ExperimentResult) -> None:
    source = _sidecar(tmp_path) if result.timeseries is not None else None
    directory = result.save(tmp_path / "results", timeseries_source=source)
    assert ExperimentResult.from_json(directory) == result


def test_atomic_path_publishes_only_on_success(tmp_path: Path) -> None:
    from llem_schema.io import atomic_path

    target = tmp_path / "export.csv"
    target.write_text("previous\n")

    def failing_writer() -> None:
        with atomic_path(target) as temporary:
            temporary.write_text("half a fi")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        failing_writer()
    assert target.read_text() == "previous\n"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path
        temporary.write_text("complete\n")
    assert target.read_text() == "complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]


def test_saved_files_get_the_usual_permissions_not_owner_only(tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    directory = example_result().save(tmp_path, timeseries_source=_sidecar(tmp_path))
    for name in ("result.json", "timeseries.parquet"):
        assert (directory / name).stat().st_mode & 0o777 == 0o666 & ~mask

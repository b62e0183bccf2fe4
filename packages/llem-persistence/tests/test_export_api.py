"""Every format through one API: JSON read-back, dispatch, streaming, atomicity and errors."""

import csv
import json
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from llem_persistence import PersistenceError
from llem_persistence.exporters import (
    EXPORT_FORMATS,
    ExportError,
    export,
    export_csv,
    export_json,
    format_for_path,
)
from llem_schema import ExperimentResult, LlemError
from llem_schema.testing import example_raw_result, example_result

Exporter = Callable[[Iterable[ExperimentResult], Path], int]


def _results() -> list[ExperimentResult]:
    first = example_result(measurement_warnings=["no baseline: enable baseline"])
    second = example_result([example_raw_result(energy_j=None, seed=5)])
    return [first, second.model_copy(update={"experiment_id": "second_run"})]


def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


# --- JSON --------------------------------------------------------------------------------


def test_json_is_an_array_of_complete_results(tmp_path: Path) -> None:
    results = _results()
    target = tmp_path / "results.json"
    assert export_json(results, target) == 2

    document = json.loads(target.read_text(encoding="utf-8"))
    assert isinstance(document, list)
    assert [ExperimentResult.model_validate(item) for item in document] == results
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "["
    assert lines[-1] == "]"
    assert len(lines) == 2 + 2  # one result per line


def test_json_of_no_results_is_an_empty_array(tmp_path: Path) -> None:
    target = tmp_path / "empty.json"
    assert export_json([], target) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == []


# --- dispatch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", "csv"),
        ("a.JSON", "json"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.xlsx", "xlsx"),
    ],
)
def test_format_follows_the_suffix(name: str, expected: str) -> None:
    assert format_for_path(name) == expected


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_export_writes_the_named_format(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "results.out"
    assert export(_results(), target, format=fmt) == 2
    magic = target.read_bytes()[:4]
    expected = {"csv": b"expe", "json": b"[\n{", "parquet": b"PAR1", "xlsx": b"PK\x03\x04"}
    assert magic.startswith(expected[fmt])


def test_unknown_format_name_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        export(_results(), tmp_path / "x.yaml", format="yaml")
    assert (
        str(caught.value) == "unknown export format 'yaml': choose one of csv, json, parquet, xlsx"
    )
    assert not (tmp_path / "x.yaml").exists()


def test_unknown_suffix_without_format_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(
        ExportError, match=r"cannot tell the export format of .*x\.txt from its suffix '\.txt'"
    ):
        export(_results(), tmp_path / "x.txt")


def test_export_errors_are_persistence_and_llem_errors() -> None:
    assert issubclass(ExportError, PersistenceError)
    assert issubclass(ExportError, LlemError)


# --- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_generator_is_streamed_one_result_at_a_time(tmp_path: Path, fmt: str) -> None:
    base = example_result()
    refs: list[weakref.ref[ExperimentResult]] = []
    alive_two_back: list[bool] = []

    def generate() -> Iterator[ExperimentResult]:
        for index in range(30):
            if index >= 2:
                alive_two_back.append(refs[index - 2]() is not None)
            result = base.model_copy(update={"experiment_id": f"run_{index:03d}"})
            refs.append(weakref.ref(result))
            yield result
            del result

    assert export(generate(), tmp_path / f"stream.{fmt}", format=fmt) == 30
    assert len(alive_two_back) == 28
    assert not any(alive_two_back)  # no earlier result was kept in memory


# --- atomicity on failure ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_failing_source_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"results.{fmt}"
    export(_results()[:1], target, format=fmt)
    before = target.read_bytes()

    def broken() -> Iterator[ExperimentResult]:
        yield from _results()
        raise OSError(5, "disk of results went away")

    with pytest.raises(OSError, match="disk of results went away") as caught:
        export(broken(), target, format=fmt)
    assert not isinstance(caught.value, ExportError)  # the source's error, passed through
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, target.name) == []


def test_bad_item_is_refused_with_its_position(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    items: list[object] = [*_results(), {"experiment_id": "x"}]
    with pytest.raises(ExportError) as caught:
        export_csv(items, target)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "item 2 of the results to export is a dict, not an ExperimentResult"
    )
    assert not target.exists()
    assert _leftovers(tmp_path, target.name) == []


def test_a_single_result_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        export_csv(_results()[0], tmp_path / "x.csv")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "export takes an iterable of results: pass [result], not a single ExperimentResult"
    )


def test_swapped_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"got the path 'results\.csv'"):
        export_csv("results.csv", tmp_path / "x.csv")  # type: ignore[arg-type]
    with pytest.raises(
        ExportError, match=r"^export takes an iterable of ExperimentResult, got int$"
    ):
        export_csv(3, tmp_path / "x.csv")  # type: ignore[arg-type]


# --- bad paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_missing_directory_is_a_one_line_error(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "no" / "such" / f"results.{fmt}"
    with pytest.raises(ExportError) as caught:
        export(_results(), target, format=fmt)
    assert str(caught.value) == (
        f"cannot write {fmt} export {target}: {target.parent} does not exist"
    )


def test_a_directory_as_target_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        export_csv(_results(), tmp_path)
    assert str(caught.value) == f"cannot write csv export {tmp_path}: it is a directory"


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("length", [240, 300], ids=["temporary-too-long", "name-too-long"])
def test_an_os_error_while_writing_becomes_a_one_line_error(
    tmp_path: Path, fmt: str, length: int
) -> None:
    target = tmp_path / ("x" * length + f".{fmt}")  # too long a file name for Linux
    with pytest.raises(ExportError) as caught:
        export(_results(), target, format=fmt)
    assert str(caught.value) == f"cannot write {fmt} export {target}: File name too long"
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_csv_lines_are_rfc4180(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    export_csv(_results(), target)
    raw = target.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # no byte-order mark
    assert raw.count(b"\r\n") == 3
    with target.open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.reader(handle))) == 3

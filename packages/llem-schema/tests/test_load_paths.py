"""``ExperimentResult.from_json`` validates current-version JSON directly (the fast path) and
sends everything else through migrations (the general path): both load the same result, and
the fast path never skips a migration or changes an error."""

import json
from pathlib import Path
from typing import Any

import pytest

from llem_schema import SCHEMA_VERSION, ExperimentResult, SchemaVersionError
from llem_schema.testing import example_config, example_raw_result, example_result
from llem_schema.versions import RAW_MIGRATIONS, RESULT_MIGRATIONS, _Step

FIXTURES = Path(__file__).parent / "fixtures"


def results() -> list[ExperimentResult]:
    config = example_config()
    two = [
        example_raw_result(process_index=i, num_processes=2, n_requests=20, seed=i)
        for i in range(2)
    ]
    return [
        example_result(),
        example_result(two, measurement_warnings=["short window: run longer"]),
        example_result([example_raw_result(energy_j=None, config=config)], config=config),
        example_result([example_raw_result(baseline_power_w=None, n_requests=0)]),
    ]


def general_path(text: str, path: Path) -> ExperimentResult:
    return ExperimentResult._load_document(json.loads(text), path)


@pytest.mark.parametrize("index", range(4))
def test_fast_and_general_paths_load_the_same_result(tmp_path: Path, index: int) -> None:
    result = results()[index]
    for text in (result.model_dump_json(indent=2), result.model_dump_json()):
        fast = ExperimentResult._validate_current_json(text)
        assert fast is not None
        assert fast == general_path(text, tmp_path / "result.json") == result
    saved = result.save(tmp_path)
    assert ExperimentResult.from_json(saved) == result


def test_the_shipped_current_fixture_takes_the_fast_path_and_matches() -> None:
    path = FIXTURES / f"v{SCHEMA_VERSION}" / "result.json"
    text = path.read_text()
    fast = ExperimentResult._validate_current_json(text)
    assert fast is not None
    assert fast == general_path(text, path) == ExperimentResult.from_json(path)


def test_duplicate_keys_resolve_as_json_loads_does() -> None:
    text = example_result().model_dump_json()
    duplicated = text.replace('"model":', '"model": "shadowed", "model":', 1)
    assert json.loads(duplicated)["model"] == example_result().model
    assert ExperimentResult._validate_current_json(duplicated) == example_result()


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(example_result().model_dump_json())
    return loaded


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.pop("schema_version"), id="no schema_version"),
        pytest.param(lambda d: d.update(schema_version="1.7"), id="newer minor"),
        pytest.param(lambda d: d.update(schema_version="0.9"), id="older"),
        pytest.param(lambda d: d.update(schema_version="v1"), id="malformed"),
        pytest.param(
            lambda d: d["process_results"][0].update(schema_version="0.9"), id="older raw"
        ),
        pytest.param(
            lambda d: d["process_results"][0].update(schema_version="1.7"), id="newer raw"
        ),
        pytest.param(lambda d: d.update(output_tokens="many"), id="bad field"),
    ],
)
def test_anything_but_a_valid_current_document_leaves_the_fast_path(change: Any) -> None:
    changed = document()
    change(changed)
    assert ExperimentResult._validate_current_json(json.dumps(changed)) is None


@pytest.mark.parametrize("text", ["", "[1, 2]", '{"schema_version": "1.0", "model": ', "NaN"])
def test_text_that_is_no_result_leaves_the_fast_path(text: str) -> None:
    assert ExperimentResult._validate_current_json(text) is None


def test_an_older_document_that_validates_as_current_is_still_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def relabel(doc: dict[str, Any]) -> dict[str, Any]:
        migrated = {"code": "unclassified", "message": "migrated from 0.9"}
        doc["measurement_warnings"] = [*doc["measurement_warnings"], migrated]
        return doc

    monkeypatch.setitem(RESULT_MIGRATIONS._steps, "0.9", _Step(SCHEMA_VERSION, relabel))
    (tmp_path / "result.json").write_text(json.dumps(document() | {"schema_version": "0.9"}))
    loaded = ExperimentResult.from_json(tmp_path)
    assert loaded.schema_version == SCHEMA_VERSION
    assert [w.message for w in loaded.measurement_warnings] == ["migrated from 0.9"]


def test_an_older_embedded_raw_that_validates_as_current_is_still_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rehost(doc: dict[str, Any]) -> dict[str, Any]:
        doc["hostname"] = "migrated-host"
        return doc

    monkeypatch.setitem(RAW_MIGRATIONS._steps, "0.9", _Step(SCHEMA_VERSION, rehost))
    changed = document()
    changed["process_results"][0]["schema_version"] = "0.9"
    (tmp_path / "result.json").write_text(json.dumps(changed))
    loaded = ExperimentResult.from_json(tmp_path)
    assert loaded.process_results[0].schema_version == SCHEMA_VERSION
    assert loaded.process_results[0].hostname == "migrated-host"


def test_a_newer_minor_embedded_raw_with_known_fields_loads(tmp_path: Path) -> None:
    changed = document()
    changed["process_results"][0]["schema_version"] = "1.7"
    (tmp_path / "result.json").write_text(json.dumps(changed))
    assert ExperimentResult.from_json(tmp_path).process_results[0].schema_version == "1.7"


def test_a_newer_major_embedded_raw_asks_for_an_upgrade(tmp_path: Path) -> None:
    changed = document()
    changed["process_results"][0]["schema_version"] = "2.0"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(changed))
    with pytest.raises(SchemaVersionError) as caught:
        ExperimentResult.from_json(tmp_path)
    assert str(caught.value) == (
        f"{path}: raw process result schema version 2.0 is newer than {SCHEMA_VERSION}, which this "
        "llem-schema reads; upgrade llem-schema (pip install -U llem-schema)"
    )


def test_an_embedded_raw_without_a_version_loads_at_the_current_one(tmp_path: Path) -> None:
    changed = document()
    del changed["process_results"][0]["schema_version"]
    text = json.dumps(changed)
    fast = ExperimentResult._validate_current_json(text)
    assert fast is not None
    assert fast == general_path(text, tmp_path / "result.json") == example_result()

import json
from pathlib import Path

import jsonschema
import pytest

from llem_schema import SCHEMA_VERSION, json_schema
from llem_schema.json_schema import DocumentKind
from llem_schema.testing import example_config, example_raw_result, example_result


def test_saved_result_validates_against_the_published_schema(tmp_path: Path) -> None:
    directory = example_result().save(tmp_path)
    document = json.loads((directory / "result.json").read_text())
    jsonschema.validate(document, json_schema("result"))


def test_the_schema_rejects_a_result_with_an_unknown_field() -> None:
    document = json.loads(example_result().model_dump_json()) | {"timeseries_path": "x"}
    with pytest.raises(jsonschema.ValidationError, match="timeseries_path"):
        jsonschema.validate(document, json_schema("result"))


def test_raw_and_config_documents_validate_too() -> None:
    jsonschema.validate(json.loads(example_raw_result().model_dump_json()), json_schema("raw"))
    jsonschema.validate(example_config().model_dump(mode="json"), json_schema("config"))


def test_a_study_file_validates_and_a_misspelt_study_key_does_not() -> None:
    study = {"name": "bs", "base": {"n": 8}, "sweep": {"pytorch.batch_size": [1, 8]}}
    jsonschema.validate(study, json_schema("study-config"))
    with pytest.raises(jsonschema.ValidationError, match="cylces"):
        jsonschema.validate(study | {"cylces": 2}, json_schema("study-config"))


@pytest.mark.parametrize(
    ("kind", "title"),
    [
        ("result", "ExperimentResult"),
        ("raw", "RawProcessResult"),
        ("config", "ExperimentConfig"),
        ("study", "StudyResult"),
        ("manifest", "StudyManifest"),
        ("study-config", "StudyConfig"),
    ],
)
def test_schema_names_its_version_and_documents_every_field(kind: DocumentKind, title: str) -> None:
    schema = json_schema(kind)
    assert schema["x-llem-schema-version"] == SCHEMA_VERSION
    assert schema["title"] == title
    undocumented = [
        f"{name}.{field}"
        for name, definition in [(title, schema), *schema.get("$defs", {}).items()]
        for field, spec in definition.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undocumented == []

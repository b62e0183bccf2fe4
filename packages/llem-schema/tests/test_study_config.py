"""The study file: defaults, strict keys and one-line errors."""

from typing import Any

import pytest
from pydantic import ValidationError

from llem_schema import ConfigError, StudyConfig, parse_study
from llem_schema.study_config import leaf_settings


def test_defaults() -> None:
    study = parse_study({"name": "s", "base": {"n": 8}})
    assert study.cycles == 1
    assert study.order == "interleaved"
    assert study.gap_between_experiments_s == 0.0
    assert study.gap_between_cycles_s == 0.0
    assert study.timeout_s == 3600.0
    assert study.cv_warning_threshold == 0.05
    assert study.output_dir == "results"
    assert study.sweep == {}
    assert study.experiments == []


def test_a_misspelt_study_key_names_it_and_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_study({"name": "s", "base": {}, "cylces": 3}, source="bs.yaml")
    message = str(caught.value)
    assert message.startswith("bs.yaml: unknown study key 'cylces'; did you mean 'cycles'?")
    assert "gap_between_cycles_s" in message  # lists what is allowed
    assert "\n" not in message
    assert caught.value.key == "cylces"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"cycles": 0}, "study key 'cycles': Input should be greater than or equal to 1 (got 0)"),
        ({"order": "random"}, "study key 'order': Input should be 'sequential', 'interleaved' or"),
        ({"timeout_s": 0}, "study key 'timeout_s': Input should be greater than 0"),
        ({"gap_between_cycles_s": -1}, "study key 'gap_between_cycles_s': Input should be"),
        ({"cv_warning_threshold": 0}, "study key 'cv_warning_threshold': Input should be"),
        ({"sweep": {"precision": []}}, "study key 'sweep.precision': List should have at least 1"),
        (
            {"sweep": {"precision": "fp16"}},
            "study key 'sweep.precision': Input should be a valid list",
        ),
        (
            {"sweep": {"pytorch..batch_size": [1]}},
            "study key 'sweep': sweep key 'pytorch..batch_size'",
        ),
        (
            {"sweep": {"decoder": [{"mode": "greedy"}], "decoder.mode": ["greedy"]}},
            "study key 'sweep': sweep keys 'decoder' and 'decoder.mode' overlap",
        ),
        ({"name": "../escape"}, "study key 'name': study name '../escape' is not allowed"),
        ({"name": ""}, "study key 'name': study name is empty"),
    ],
)
def test_bad_study_values_are_one_line_errors_naming_the_key(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_study({"name": "s", "base": {"n": 8}} | document)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_study_needs_a_name() -> None:
    with pytest.raises(ConfigError, match=r"^study key 'name' is required$"):
        parse_study({"base": {"n": 8}})


def test_a_study_without_any_point_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_study({"name": "empty"})
    assert str(caught.value) == (
        "invalid study: a study needs at least one point: give base settings, a sweep, or "
        "experiments"
    )


def test_the_study_config_is_frozen_and_strict() -> None:
    study = parse_study({"name": "s", "base": {"n": 8}})
    with pytest.raises(ValidationError, match="frozen"):
        study.cycles = 2  # type: ignore[misc]
    kwargs: dict[str, Any] = {"name": "s", "base": {"n": 8}, "cycle": 2}
    with pytest.raises(ValidationError, match="cycle"):
        StudyConfig(**kwargs)


def test_leaf_settings_flatten_nested_and_dotted_keys() -> None:
    settings: dict[str, Any] = {
        "pytorch": {"batch_size": 8},
        "decoder.mode": "sampling",
        "decoder": {"temperature": 0.5},
        "prompts": None,  # a section given a non-mapping stays a leaf: validation reports it
        "warmup": {},
    }
    assert leaf_settings(settings, where="base") == {
        "pytorch.batch_size": 8,
        "decoder.mode": "sampling",
        "decoder.temperature": 0.5,
        "prompts": None,
    }

from datetime import UTC, datetime

import pytest

from llem_schema import InvalidExperimentIdError, new_experiment_id, validate_experiment_id
from llem_schema.ids import model_slug


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "experiment id is empty"),
        ("..", "is not allowed"),
        ("a..b", "is not allowed"),
        ("../escape", "is not allowed"),
        ("/etc/passwd", "is not allowed"),
        ("a/b", "is not allowed"),
        ("a\\b", "is not allowed"),
        ("a\0b", "is not allowed"),
        (".hidden", "is not allowed"),
        ("-flag", "is not allowed"),
        ("with space", "is not allowed"),
        ("x" * 129, "129 characters long; at most 128"),
    ],
)
def test_unsafe_ids_are_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidExperimentIdError, match=reason):
        validate_experiment_id(value)


def test_safe_ids_pass_unchanged() -> None:
    for value in ["exp1", "tiny_pytorch_2026-11-22T14-03-05_0a1b2c", "A.b-c_d", "x" * 128]:
        assert validate_experiment_id(value) == value


def test_new_ids_are_safe_readable_and_unique() -> None:
    when = datetime(2026, 11, 22, 14, 3, 5, tzinfo=UTC)
    ids = {new_experiment_id("meta-llama/Llama-3.2-1B", "pytorch", when) for _ in range(50)}
    assert len(ids) == 50
    for value in ids:
        assert value.startswith("llama-3.2-1b_pytorch_2026-11-22T14-03-05_")
        assert validate_experiment_id(value) == value


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("llem/tiny", "tiny"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5-0.5b-instruct"),
        ("/models/my model/", "my-model"),
        ("C:\\models\\Phi-3", "phi-3"),
        ("../..", "model"),
    ],
)
def test_model_slug(model: str, slug: str) -> None:
    assert model_slug(model) == slug

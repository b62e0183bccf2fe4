"""PyTorchSettings: the ``pytorch:`` section of a config, validated and resolved."""

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from llem_backend_pytorch import PyTorchBackend, PyTorchSettings
from llem_schema import ConfigError, ExperimentConfig, parse_config

ConfigFactory = Callable[..., ExperimentConfig]

BACKENDS = {"pytorch": PyTorchSettings}
DEFAULTS = {"batch_size": 1, "attn_implementation": None, "torch_compile": False}
MISSPELT = (
    "unknown config key 'pytorch.batch_sise'; did you mean 'batch_size'? "
    "(allowed under pytorch: attn_implementation, batch_size, torch_compile)"
)


def test_defaults_resolve_to_exactly_these_settings() -> None:
    assert PyTorchSettings().model_dump() == DEFAULTS
    resolved = parse_config({}, backends=BACKENDS)
    assert resolved.backend == "pytorch"
    assert resolved.backend_section() == DEFAULTS
    assert resolved.backend_settings(PyTorchSettings) == PyTorchSettings()
    partial = parse_config({"pytorch": {"batch_size": 4}}, backends=BACKENDS)
    assert partial.backend_section() == DEFAULTS | {"batch_size": 4}
    assert parse_config(resolved.model_dump(), backends=BACKENDS) == resolved


def test_the_section_is_read_into_the_settings() -> None:
    config = ExperimentConfig.model_validate(
        {"pytorch": {"batch_size": 4, "attn_implementation": "eager", "torch_compile": True}}
    )
    assert config.backend_section() == {
        "batch_size": 4,
        "attn_implementation": "eager",
        "torch_compile": True,
    }
    assert config.backend_settings(PyTorchSettings) == PyTorchSettings(
        batch_size=4, attn_implementation="eager", torch_compile=True
    )


def test_a_misspelt_key_is_a_one_line_config_error() -> None:
    config = ExperimentConfig.model_validate({"pytorch": {"batch_sise": 4}})
    with pytest.raises(ConfigError) as caught:
        config.backend_settings(PyTorchSettings)
    assert str(caught.value) == MISSPELT
    assert caught.value.key == "pytorch.batch_sise"
    with pytest.raises(ConfigError) as resolved:
        parse_config({"pytorch": {"batch_sise": 4}}, backends=BACKENDS)
    assert str(resolved.value) == MISSPELT


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"batch_size": 0},
            "config key 'pytorch.batch_size': Input should be greater than 0 (got 0)",
        ),
        (
            {"attn_implementation": "flash"},
            "config key 'pytorch.attn_implementation': Input should be 'sdpa', 'eager' or "
            "'flash_attention_2' (got 'flash')",
        ),
    ],
)
def test_a_bad_value_is_a_one_line_config_error(section: dict[str, object], message: str) -> None:
    config = ExperimentConfig.model_validate({"pytorch": section})
    with pytest.raises(ConfigError) as caught:
        config.backend_settings(PyTorchSettings)
    assert str(caught.value) == message


def test_settings_are_frozen() -> None:
    settings = PyTorchSettings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.batch_size = 2  # type: ignore[misc]


def test_every_setting_is_in_the_config_hash() -> None:
    default = parse_config({}, backends=BACKENDS).measurement_config_hash()
    written = parse_config({"pytorch": DEFAULTS}, backends=BACKENDS).measurement_config_hash()
    assert written == default
    for changed in ({"batch_size": 2}, {"attn_implementation": "sdpa"}, {"torch_compile": True}):
        config = parse_config({"pytorch": changed}, backends=BACKENDS)
        assert config.measurement_config_hash() != default, changed


def test_prepare_rejects_a_misspelt_setting(backend: PyTorchBackend) -> None:
    config = ExperimentConfig.model_validate({"pytorch": {"batch_sise": 4}})
    with pytest.raises(ConfigError) as caught:
        backend.prepare(config)
    assert str(caught.value) == MISSPELT


def test_load_uses_the_attention_setting(
    backend: PyTorchBackend, make_config: ConfigFactory
) -> None:
    backend.load_on(make_config(pytorch={"attn_implementation": "eager"}), None)
    assert backend.model.config._attn_implementation == "eager"
    backend.load_on(make_config(pytorch={"attn_implementation": "sdpa"}), None)
    assert backend.model.config._attn_implementation == "sdpa"

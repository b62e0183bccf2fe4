"""The ``openai:`` section of a config, and the backend as a plugin: registered, conforming."""

from importlib.metadata import entry_points
from typing import Any

import pytest

import llem_backend_openai
from llem_backend_openai import OpenAIBackend, OpenAISettings, ServerSettings
from llem_schema import ConfigError, ExperimentConfig, InferenceBackend, LlemError, parse_config


def _parse(openai: dict[str, Any], **top: Any) -> ExperimentConfig:
    data = {"backend": "openai", "openai": openai} | top
    return parse_config(data, backends={"openai": OpenAISettings})


def _settings(openai: dict[str, Any]) -> OpenAISettings:
    return _parse(openai).backend_settings(OpenAISettings)


def _error(openai: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _parse(openai)
    assert "\n" not in str(caught.value)
    return caught.value


# ---- the settings ----


def test_the_defaults_point_at_a_local_server_on_port_8000() -> None:
    settings = _settings({})
    assert settings == OpenAISettings()
    assert settings.model_dump() == {
        "base_url": "http://127.0.0.1:8000/v1",
        "model": None,
        "api": "completions",
        "api_key_env": None,
        "timeout_s": 600.0,
        "extra_body": {},
        "server": None,
    }


def test_a_resolved_config_holds_the_section_in_full() -> None:
    config = _parse({"api": "chat", "server": {"command": ["vllm", "serve", "m"]}})
    assert config.backend_section() == {
        "base_url": "http://127.0.0.1:8000/v1",
        "model": None,
        "api": "chat",
        "api_key_env": None,
        "timeout_s": 600.0,
        "extra_body": {},
        "server": {
            "command": ["vllm", "serve", "m"],
            "env": {},
            "ready_timeout_s": 600.0,
            "stop_timeout_s": 30.0,
        },
    }


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://api.example.com/v1//", "https://api.example.com/v1"),
        ("http://gpu-box:30000/v1", "http://gpu-box:30000/v1"),
    ],
)
def test_base_url_loses_its_trailing_slashes(given: str, kept: str) -> None:
    assert _settings({"base_url": given}).base_url == kept


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "ftp://host/v1", "ws://host/v1", ""])
def test_base_url_must_be_http_or_https(url: str) -> None:
    error = _error({"base_url": url})
    assert str(error) == (
        f"config key 'openai.base_url': must be an http:// or https:// URL (got {url!r})"
    )
    assert error.key == "openai.base_url"


def test_a_misspelt_key_is_a_one_line_error_suggesting_the_right_one() -> None:
    error = _error({"bse_url": "http://127.0.0.1:8000/v1"})
    assert str(error) == (
        "unknown config key 'openai.bse_url'; did you mean 'base_url'? (allowed under openai: "
        "api, api_key_env, base_url, extra_body, model, server, timeout_s)"
    )
    assert error.key == "openai.bse_url"


def test_a_misspelt_server_key_lists_the_keys_allowed_under_openai_server() -> None:
    """The optional ``server`` section lists its keys and suggests the one meant."""
    error = _error({"server": {"command": ["vllm", "serve"], "ready_timout_s": 5}})
    assert str(error) == (
        "unknown config key 'openai.server.ready_timout_s'; did you mean 'ready_timeout_s'? "
        "(allowed under openai.server: command, env, ready_timeout_s, stop_timeout_s)"
    )
    assert error.key == "openai.server.ready_timout_s"


@pytest.mark.parametrize(
    ("openai", "key"),
    [
        ({"api": "responses"}, "openai.api"),
        ({"timeout_s": 0}, "openai.timeout_s"),
        ({"server": {"command": []}}, "openai.server.command"),
        ({"server": {"command": ["x"], "ready_timeout_s": -1}}, "openai.server.ready_timeout_s"),
        ({"server": {"command": ["x"], "stop_timeout_s": 0}}, "openai.server.stop_timeout_s"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(openai: dict[str, Any], key: str) -> None:
    error = _error(openai)
    assert error.key == key
    assert str(error).startswith(f"config key '{key}': ")


def test_the_settings_are_frozen_and_forbid_unknown_keys() -> None:
    assert OpenAISettings.model_config.get("extra") == "forbid"
    assert OpenAISettings.model_config.get("frozen") is True
    assert ServerSettings.model_config.get("extra") == "forbid"
    assert ServerSettings.model_config.get("frozen") is True


# ---- the backend as a plugin ----


def test_the_backend_satisfies_the_protocol() -> None:
    backend = OpenAIBackend()
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "openai"
    assert OpenAIBackend.settings_model is OpenAISettings


def test_the_version_names_the_package_and_httpx2() -> None:
    from importlib.metadata import version

    import httpx2

    assert OpenAIBackend().version == (
        f"llem-backend-openai {version('llem-backend-openai')}; httpx2 {httpx2.__version__}"
    )


def test_the_entry_point_names_the_backend_class() -> None:
    found = entry_points(group="llem.backends", name="openai")
    assert [plugin.value for plugin in found] == ["llem_backend_openai:OpenAIBackend"]
    (plugin,) = found
    assert plugin.load() is OpenAIBackend


def test_the_public_names_and_errors() -> None:
    assert sorted(llem_backend_openai.__all__) == [
        "OpenAIBackend",
        "OpenAISettings",
        "SERVER_LOG",
        "ServerError",
        "ServerSettings",
    ]
    assert llem_backend_openai.SERVER_LOG == "server.log"
    assert issubclass(llem_backend_openai.ServerError, LlemError)

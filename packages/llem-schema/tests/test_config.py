import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llem_schema import (
    ConfigError,
    DecoderConfig,
    ExperimentConfig,
    measurement_config_hash,
    parse_config,
)
from llem_schema.testing import EXAMPLE_BACKENDS


def test_defaults_run_the_tiny_model_on_the_builtin_prompts() -> None:
    config = ExperimentConfig()
    assert config.model == "llem/tiny"
    assert config.backend == "pytorch"
    assert config.prompts.source == "builtin"
    assert config.decoder.mode == "greedy"
    assert config.energy.source == "auto"
    assert config.energy.sample_rate_hz == 10.0
    assert config.energy.devices is None  # the GPUs the backend placed the model on
    assert config.backend_sections == {}  # the backend's own defaults fill it when resolved


def test_misspelt_top_level_key_names_the_key_and_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"modle": "gpt2"})
    message = str(caught.value)
    assert message.startswith("unknown config key 'modle'; did you mean 'model'?")
    assert "max_new_tokens" in message  # lists what is allowed
    assert "\n" not in message
    assert caught.value.key == "modle"


def test_misspelt_nested_key_names_its_section() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"decoder": {"mode": "sampling", "temprature": 0.7}})
    assert str(caught.value).startswith(
        "unknown config key 'decoder.temprature'; did you mean 'temperature'? "
        "(allowed under decoder: ignore_eos, mode, preset, temperature, top_k, top_p)"
    )
    assert caught.value.key == "decoder.temprature"


def test_bad_value_names_the_key_what_is_allowed_and_what_was_given() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"precision": "fp8"})
    assert str(caught.value) == (
        "config key 'precision': Input should be 'fp32', 'fp16' or 'bf16' (got 'fp8')"
    )


def test_several_problems_report_the_first_and_count_the_rest() -> None:
    with pytest.raises(ConfigError, match=r"\(and 2 more problems\)$"):
        parse_config({"n": 0, "batch": 3, "seed": -1})


def test_a_misspelt_keyword_fails_at_construction() -> None:
    kwargs: dict[str, Any] = {"max_new_token": 10}
    with pytest.raises(ValidationError, match="max_new_token"):
        ExperimentConfig(**kwargs)


def test_config_is_frozen() -> None:
    config = ExperimentConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.n = 5  # type: ignore[misc]


def test_preset_fills_what_is_not_set_and_explicit_settings_win() -> None:
    decoder = DecoderConfig.model_validate({"preset": "factual", "temperature": 0.5})
    assert decoder.mode == "sampling"
    assert decoder.temperature == 0.5
    assert decoder.top_p == 0.9
    assert decoder.top_k == 40


def test_sampling_without_settings_gets_neutral_defaults() -> None:
    decoder = DecoderConfig(mode="sampling")
    assert (decoder.temperature, decoder.top_p, decoder.top_k) == (1.0, 1.0, 0)


def test_greedy_refuses_sampling_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"decoder": {"temperature": 0.7}})
    assert str(caught.value) == (
        "config key 'decoder': temperature only apply to sampling: set decoder.mode to "
        "'sampling' or remove them (got {'temperature': 0.7})"
    )


def test_every_process_needs_a_prompt() -> None:
    with pytest.raises(ConfigError, match=r"n \(2\) is smaller than num_processes \(4\)"):
        parse_config({"n": 2, "num_processes": 4})


@pytest.mark.parametrize("source", ["builtin", "synthetic", "data/prompts.jsonl", "p.CSV"])
def test_prompt_sources_that_are_accepted(source: str) -> None:
    assert parse_config({"prompts": {"source": source}}).prompts.source == source


def test_prompt_file_must_be_jsonl_or_csv() -> None:
    with pytest.raises(
        ConfigError, match=r"'prompts.source': must be 'builtin', 'synthetic' or a path"
    ):
        parse_config({"prompts": {"source": "prompts.txt"}})


def test_warmup_max_count_must_cover_count_when_converging() -> None:
    with pytest.raises(
        ConfigError, match=r"warmup.max_count \(2\) is smaller than warmup.count \(3\)"
    ):
        parse_config({"warmup": {"until_converged": True, "max_count": 2}})


def test_hash_ignores_key_order_name_and_output_dir() -> None:
    a = parse_config({"model": "m", "n": 30, "name": "first", "output_dir": "a"})
    b = parse_config({"output_dir": "b", "n": 30, "model": "m"})
    assert measurement_config_hash(a) == measurement_config_hash(b)
    assert a.measurement_config_hash() == measurement_config_hash(a)


def test_hash_sees_a_preset_and_its_explicit_settings_as_the_same_measurement() -> None:
    preset = parse_config({"decoder": {"preset": "standard"}})
    explicit = parse_config(
        {"decoder": {"mode": "sampling", "temperature": 1.0, "top_p": 1.0, "top_k": 50}}
    )
    assert preset.decoder.preset == "standard"
    assert explicit.decoder.preset is None
    assert measurement_config_hash(preset) == measurement_config_hash(explicit)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "renamed"},
        {"output_dir": "elsewhere"},
        {"energy": {"mismatch_tolerance": 0.5}},
        {"baseline": {"cache_ttl_s": 0}},
    ],
)
def test_hash_ignores_what_does_not_change_the_measurement(change: dict[str, Any]) -> None:
    assert measurement_config_hash(parse_config(change)) == measurement_config_hash(
        ExperimentConfig()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"n": 31},
        {"precision": "bf16"},
        {"pytorch": {"batch_size": 8}},
        {"decoder": {"mode": "sampling"}},
        {"energy": {"sample_rate_hz": 100}},
        {"num_processes": 2},
    ],
)
def test_hash_changes_with_anything_measured(change: dict[str, Any]) -> None:
    base = {"n": 30}
    assert measurement_config_hash(parse_config(base)) != measurement_config_hash(
        parse_config(base | change)
    )


def test_hash_of_the_default_config_is_stable() -> None:
    # A golden value: if this changes, every stored hash changes meaning. Change it only
    # together with a schema version bump. A new default of a measured setting changes it,
    # rightly; a new backend's section does not (only the selected backend's is hashed).
    # Schema 1.1 moved the PyTorch settings out of llem_schema into the backend's own
    # model and added energy.devices: the resolved default config still hashes as in 1.0.
    resolved = parse_config({}, backends=EXAMPLE_BACKENDS)
    assert resolved.backend_section() == {
        "batch_size": 1,
        "attn_implementation": None,
        "torch_compile": False,
    }
    assert measurement_config_hash(resolved) == "7e29ffb977e22ade"


def test_a_prompts_file_counts_by_its_content(tmp_path: Path) -> None:
    first, moved = tmp_path / "prompts.jsonl", tmp_path / "elsewhere.jsonl"
    first.write_text('{"prompt": "hello"}\n')
    moved.write_text('{"prompt": "hello"}\n')

    def hash_of(path: Path) -> str:
        return measurement_config_hash(parse_config({"prompts": {"source": str(path)}}))

    original = hash_of(first)
    assert hash_of(moved) == original  # the same prompts under another path
    first.write_text('{"prompt": "hello, edited"}\n')
    assert hash_of(first) != original  # edited prompts under the same path
    missing = tmp_path / "gone.jsonl"
    assert hash_of(missing) != hash_of(tmp_path / "also-gone.jsonl")  # unreadable: by path


def test_a_backend_section_is_kept_as_given_until_resolved() -> None:
    config = parse_config({"backend": "mybackend", "mybackend": {"depth": 3}, "pytorch": {}})
    assert config.backend == "mybackend"
    assert config.backend_section() == {"depth": 3}
    assert config.backend_section("pytorch") == {}
    assert config.backend_sections == {"mybackend": {"depth": 3}, "pytorch": {}}
    assert config.model_dump(mode="json")["mybackend"] == {"depth": 3}  # as in a config file


def test_resolving_validates_the_selected_section_and_drops_the_others() -> None:
    raw = {"pytorch": {"batch_size": 4}, "other": {"x": 1}}
    backends = dict(EXAMPLE_BACKENDS) | {"other": DecoderConfig}
    resolved = parse_config(raw, backends=backends)
    assert resolved.backend_sections == {
        "pytorch": {"batch_size": 4, "attn_implementation": None, "torch_compile": False}
    }
    assert parse_config(resolved.model_dump(), backends=backends) == resolved  # idempotent
    # written out or left to the defaults, the same measurement
    assert (
        parse_config(
            {"pytorch": {"batch_size": 1}}, backends=EXAMPLE_BACKENDS
        ).measurement_config_hash()
        == parse_config({}, backends=EXAMPLE_BACKENDS).measurement_config_hash()
    )


def test_only_the_selected_backend_s_section_is_hashed() -> None:
    base = {"pytorch": {"batch_size": 4}}
    assert measurement_config_hash(parse_config(base)) == measurement_config_hash(
        parse_config(base | {"vllm": {"gpu_memory_utilization": 0.9}})
    )
    assert measurement_config_hash(parse_config(base)) != measurement_config_hash(
        parse_config({"pytorch": {"batch_size": 8}})
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"warmpu": {"count": 3}},
            "unknown config key 'warmpu'; did you mean 'warmup'? (allowed: backend, baseline, "
            "decoder, energy, load, max_input_tokens, max_new_tokens, model, n, name, "
            "num_processes, output_dir, precision, prompts, seed, slo, warmup; backend "
            "sections: pytorch)",
        ),
        (
            {"pytorch": {"batch_sise": 2}},
            "unknown config key 'pytorch.batch_sise'; did you mean 'batch_size'? (allowed "
            "under pytorch: attn_implementation, batch_size, torch_compile)",
        ),
        (
            {"pytorch": 3},
            "config key 'pytorch': the settings of backend 'pytorch' are a mapping of keys to "
            "values (got 3)",
        ),
        (
            {"backend": "vllm"},
            "config key 'backend': no backend 'vllm' is installed (installed: pytorch)",
        ),
        (
            {"pytorch": {"batch_size": 0}},
            "config key 'pytorch.batch_size': Input should be greater than 0 (got 0)",
        ),
    ],
)
def test_resolving_against_the_installed_backends_names_the_bad_key(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, backends=EXAMPLE_BACKENDS)
    assert str(caught.value) == message


def test_a_top_level_key_that_is_no_mapping_is_an_unknown_key_even_unresolved() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"nn": 3})
    assert str(caught.value).startswith("unknown config key 'nn'; did you mean 'n'?")
    assert caught.value.key == "nn"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backend": "Py Torch"}, "config key 'backend': String should match pattern"),
        ({"backend": "energy"}, "backend 'energy' would clash with the setting of that name"),
        ({"My Section": {}}, "'My Section' is neither a setting nor a backend name"),
    ],
)
def test_backend_names_are_plain_and_clash_with_no_setting(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(data)


def test_energy_devices_name_gpus_and_are_hashed_only_when_set() -> None:
    assert parse_config({"energy": {"devices": "all"}}).energy.devices == "all"
    assert parse_config({"energy": {"devices": [1, "GPU-5d6f"]}}).energy.devices == [1, "GPU-5d6f"]
    default = measurement_config_hash(parse_config({}))
    assert measurement_config_hash(parse_config({"energy": {"devices": None}})) == default
    assert measurement_config_hash(parse_config({"energy": {"devices": "all"}})) != default
    with pytest.raises(ConfigError, match="'cuda:0' is neither an NVML index nor a GPU UUID"):
        parse_config({"energy": {"devices": ["cuda:0"]}})
    with pytest.raises(ConfigError, match="a device is named twice"):
        parse_config({"energy": {"devices": [0, 0]}})

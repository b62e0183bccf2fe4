import re
from pathlib import Path

import pytest

from llem_harness.backends import SettingsModels
from llem_harness.config import apply_overrides, load_experiment_config, read_config_file
from llem_harness.errors import EXIT_USAGE, exit_code_for
from llem_schema import ConfigError
from llem_schema.testing import EXAMPLE_BACKENDS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_become_one_validated_config(tmp_path: Path) -> None:
    path = write(tmp_path, "model: org/M\nn: 40\npytorch:\n  batch_size: 4\n")
    config = load_experiment_config(
        path,
        {"pytorch.batch_size": 8, "precision": "bf16", "n": None},
        backends=EXAMPLE_BACKENDS,
    )
    assert (config.model, config.n, config.backend_section()["batch_size"], config.precision) == (
        "org/M",
        40,
        8,
        "bf16",
    )


def test_backend_overrides_set_keys_of_the_selected_backends_section(tmp_path: Path) -> None:
    path = write(tmp_path, "pytorch:\n  batch_size: 4\n")
    config = load_experiment_config(
        path,
        backend_overrides={"batch_size": 8, "torch_compile": None},
        backends=EXAMPLE_BACKENDS,
    )
    assert config.backend == "pytorch"
    assert config.backend_section() == {
        "batch_size": 8,
        "attn_implementation": None,
        "torch_compile": False,
    }


def test_no_file_means_defaults() -> None:
    config = load_experiment_config(None, {"n": 3}, backends=EXAMPLE_BACKENDS)
    assert config.n == 3
    assert config.backend_section()["batch_size"] == 1


def test_the_installed_backends_resolve_a_config_by_default() -> None:
    installed = SettingsModels()
    if "pytorch" not in installed:
        pytest.skip("no PyTorch backend installed")
    config = load_experiment_config(None, {"pytorch.batch_size": 2})
    assert config.backend_section()["batch_size"] == 2


def test_a_backend_that_is_not_installed_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "backend: nope\n")
    with pytest.raises(ConfigError) as caught:
        load_experiment_config(path, backends=EXAMPLE_BACKENDS)
    assert exit_code_for(caught.value) == EXIT_USAGE
    assert caught.value.key == "backend"
    assert str(caught.value) == (
        f"{path}: config key 'backend': no backend 'nope' is installed (installed: pytorch)"
    )


def test_an_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "pytorch:\n  batchsize: 4\n")
    with pytest.raises(ConfigError) as caught:
        load_experiment_config(path, backends=EXAMPLE_BACKENDS)
    assert str(caught.value).startswith(
        f"{path}: unknown config key 'pytorch.batchsize'; did you mean 'batch_size'?"
    )
    assert caught.value.key == "pytorch.batchsize"
    assert exit_code_for(caught.value) == EXIT_USAGE


def test_duplicate_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "n: 4\nmodel: m\nn: 5\n")
    with pytest.raises(ConfigError, match=rf"^{path} line 3: duplicate key 'n'$"):
        read_config_file(path)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\nn: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"^{path} line \d+: "):
        read_config_file(path)


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="a config is a mapping of keys to values, not list"):
        read_config_file(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file$"):
        read_config_file(tmp_path / "nope.yaml")


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_experiment_config(write(tmp_path, ""), backends=EXAMPLE_BACKENDS).model == (
        "llem/tiny"
    )


def test_overrides_create_sections_but_not_inside_values() -> None:
    assert apply_overrides({"n": 1}, {"decoder.mode": "sampling"}) == {
        "n": 1,
        "decoder": {"mode": "sampling"},
    }
    with pytest.raises(
        ConfigError, match=re.escape("config key 'n' is a value, so 'n.x' cannot be set inside it")
    ):
        apply_overrides({"n": 1}, {"n.x": 2})


def test_overrides_do_not_change_the_input() -> None:
    base = {"pytorch": {"batch_size": 1}}
    apply_overrides(base, {"pytorch.batch_size": 8})
    assert base == {"pytorch": {"batch_size": 1}}

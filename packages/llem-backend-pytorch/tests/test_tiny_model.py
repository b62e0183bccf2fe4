"""The built-in tiny model: deterministic, cached, atomic, and a normal model directory."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import llem_backend_pytorch._tiny_build
import llem_backend_pytorch.tiny
from llem_backend_pytorch import (
    CACHE_DIR_ENV,
    TINY_MODEL,
    BackendError,
    ensure_tiny_model,
    resolve_cache_dir,
    resolve_model_source,
    tiny_model_dir,
)
from llem_backend_pytorch.tiny import TINY_MODEL_MARKER


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    return dict(model.state_dict())


def test_same_seed_gives_the_same_model_and_tokenizer(tiny_dir: Path, tmp_path: Path) -> None:
    again = ensure_tiny_model(tmp_path)
    assert again != tiny_dir
    first, second = _weights(tiny_dir), _weights(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    for name in ("tokenizer.json", "config.json", "generation_config.json", TINY_MODEL_MARKER):
        assert (tiny_dir / name).read_bytes() == (again / name).read_bytes(), name


def test_another_seed_gives_other_weights(tiny_dir: Path, tmp_path: Path) -> None:
    other = ensure_tiny_model(tmp_path, seed=1)
    assert other.name == "llem-tiny-v2-seed1"
    first, second = _weights(tiny_dir), _weights(other)
    assert not torch.equal(first["model.embed_tokens.weight"], second["model.embed_tokens.weight"])


def test_second_call_reuses_the_build(
    tiny_dir: Path, tiny_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> dict[str, object]:
        raise AssertionError("the tiny model was rebuilt")

    monkeypatch.setattr(llem_backend_pytorch._tiny_build, "build_tiny_model", refuse)
    weights = tiny_dir / "model.safetensors"
    before = weights.stat()
    assert ensure_tiny_model(tiny_cache) == tiny_dir
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_it_is_small_and_loads_with_from_pretrained(tiny_dir: Path) -> None:
    marker = json.loads((tiny_dir / TINY_MODEL_MARKER).read_text())
    assert marker["architecture"] == "LlamaForCausalLM"
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.num_parameters() == marker["num_parameters"] < 2_000_000
    assert model.config.num_hidden_layers == 2
    assert tokenizer.padding_side == "left"
    ids = tokenizer("Why is the sky blue?")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Why is the sky blue?"


def test_the_backend_resolves_the_reserved_name_to_that_directory(
    tiny_dir: Path, tiny_cache: Path
) -> None:
    source = resolve_model_source(TINY_MODEL, cache_dir=tiny_cache)
    assert Path(source.location) == tiny_dir
    assert source.is_local_dir
    assert source.revision == "llem-tiny-v2-seed0"


def test_cache_dir_comes_from_parameter_env_or_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg" / "llem"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert tiny_model_dir() == tmp_path / "env" / "models" / "llem-tiny-v2-seed0"
    assert resolve_cache_dir(tmp_path / "given") == tmp_path / "given"


def test_losing_the_rename_race_uses_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = llem_backend_pytorch.tiny._build_into
    target = tiny_model_dir(tmp_path)

    def build_while_another_process_wins(directory: Path, *, seed: int) -> None:
        real_build(directory, seed=seed)
        winner = target.with_name("winner.tmp")
        real_build(winner, seed=seed)
        winner.rename(target)

    monkeypatch.setattr(llem_backend_pytorch.tiny, "_build_into", build_while_another_process_wins)
    assert ensure_tiny_model(tmp_path) == target
    assert (target / TINY_MODEL_MARKER).is_file()
    assert [path.name for path in target.parent.iterdir()] == [target.name]


def test_an_unusable_cache_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendError, match=r"cannot create the tiny model under .*LLEM_CACHE_DIR"):
        ensure_tiny_model(blocker)


@pytest.mark.slow
def test_two_processes_building_at_once_both_get_a_valid_model(tmp_path: Path) -> None:
    # Each builder imports torch and transformers, then waits for the "go" file, so both
    # find the model missing at about the same moment and race to put their build in place.
    cache, go = tmp_path / "cache", tmp_path / "go"
    code = (
        "import sys, time, pathlib, logging\n"
        "import torch, transformers\n"
        "from llem_backend_pytorch import ensure_tiny_model\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s: %(message)s')\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "while not pathlib.Path(sys.argv[3]).exists(): time.sleep(0.01)\n"
        "print(ensure_tiny_model(sys.argv[1]))\n"
    )
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(cache), str(tmp_path / f"ready{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "builders did not start"
        time.sleep(0.05)
    go.touch()
    outputs = [builder.communicate(timeout=120) for builder in builders]
    for builder, (stdout, stderr) in zip(builders, outputs, strict=True):
        assert builder.returncode == 0, stderr
        assert Path(stdout.strip()) == tiny_model_dir(cache)
    models = cache / "models"
    assert [path.name for path in models.iterdir()] == ["llem-tiny-v2-seed0"]  # no leftovers
    assert (models / "llem-tiny-v2-seed0" / TINY_MODEL_MARKER).is_file()
    model = AutoModelForCausalLM.from_pretrained(
        models / "llem-tiny-v2-seed0", local_files_only=True
    )
    assert model.num_parameters() > 0


def test_a_build_that_wrote_no_weights_is_refused_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torch.distributed, transformers saves weights only on rank 0; a build on another
    rank must fail loudly instead of publishing a model directory without weights."""
    from transformers import PreTrainedModel

    monkeypatch.setattr(PreTrainedModel, "should_save_on_this_rank", lambda self, main: False)
    with pytest.raises(
        BackendError, match=r"building the tiny model wrote no config.json, model.safetensors"
    ):
        ensure_tiny_model(tmp_path)
    assert not tiny_model_dir(tmp_path).exists()

"""Shared fixtures: the tiny model built once per session into a temporary cache, offline."""

import os

# Set before transformers / huggingface_hub are imported: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llem_backend_pytorch import PyTorchBackend, ensure_tiny_model
from llem_schema import ExperimentConfig

ConfigFactory = Callable[..., ExperimentConfig]


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the built tiny model (seed 0)."""
    cache = tmp_path_factory.mktemp("llem-cache")
    ensure_tiny_model(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_dir(tiny_cache: Path) -> Path:
    """The tiny model's directory."""
    return ensure_tiny_model(tiny_cache)


@pytest.fixture
def backend(tiny_cache: Path) -> Iterator[PyTorchBackend]:
    """A backend using the session's tiny model, with nothing loaded; unloaded afterwards."""
    instance = PyTorchBackend(cache_dir=tiny_cache)
    yield instance
    instance.unload()


@pytest.fixture
def make_config() -> ConfigFactory:
    """Builds a small config on the tiny model; keyword arguments override fields."""

    def build(**settings: object) -> ExperimentConfig:
        base: dict[str, object] = {"n": 8, "max_new_tokens": 8}
        return ExperimentConfig.model_validate(base | settings)

    return build


@pytest.fixture
def prompts() -> list[str]:
    """Four prompts of clearly different lengths."""
    return [
        "Why is the sky blue?",
        "Write a Python function that checks whether a string is a palindrome, ignoring case.",
        "Hi",
        "Explain, in a few sentences, how a refrigerator keeps food cold and where the heat "
        "goes, mentioning the compressor and the refrigerant.",
    ]

"""Shared fixtures of the harness's tests.

The harness imports no backend; only the prompt tests that check synthetic prompts against a
real tokenizer use one, the installed PyTorch backend's built-in tiny model (built locally,
offline, into a temporary cache), and they are skipped where that backend is not installed.
"""

import os

# Set before transformers / huggingface_hub are imported: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from collections.abc import Callable

import pytest

TokenCount = Callable[[str], int]


@pytest.fixture(scope="session")
def tiny_count_tokens(tmp_path_factory: pytest.TempPathFactory) -> TokenCount:
    """Tokens a text becomes with the tiny model's tokenizer, special tokens included."""
    backend = pytest.importorskip("llem_backend_pytorch", reason="no PyTorch backend installed")
    cache = tmp_path_factory.mktemp("llem-cache")
    backend.ensure_tiny_model(cache)
    tokenizer = backend.load_tokenizer(backend.TINY_MODEL, cache_dir=cache)

    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    return count

"""Finding a model and loading its tokenizer, without ever downloading.

A model is the built-in ``llem/tiny`` (built into llem's cache on first use), a local
directory holding ``config.json`` and the weights, or a hub id whose files are already in
the local Hugging Face cache. Everything loads with ``local_files_only=True``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llem_backend_pytorch.errors import BackendError, ModelNotFoundError
from llem_backend_pytorch.tiny import TINY_MODEL_SEED, ensure_tiny_model, tiny_model_revision
from llem_schema.config import TINY_MODEL

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["ModelSource", "load_tokenizer", "resolve_model_source"]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files come from."""

    name: str
    """The model as configured (``llem/tiny``, a path, a hub id)."""
    location: str
    """What ``from_pretrained`` is given: a directory path or a hub id."""
    is_local_dir: bool
    revision: str | None = None


def resolve_model_source(
    model: str, *, cache_dir: Path | str | None = None, tiny_seed: int = TINY_MODEL_SEED
) -> ModelSource:
    """Resolve ``model`` to a directory or a hub id; builds ``llem/tiny`` if needed.

    Raises :class:`ModelNotFoundError` for a path that is not a model directory.
    """
    if model == TINY_MODEL:
        path = ensure_tiny_model(cache_dir, seed=tiny_seed)
        return ModelSource(model, str(path), True, tiny_model_revision(tiny_seed))
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model directory {path} has no config.json; point model to a directory "
                "written by save_pretrained (config.json, weights, tokenizer files)"
            )
        return ModelSource(model, str(path), True)
    if path.exists():
        raise ModelNotFoundError(
            f"model {model!r} is a file, not a model directory; point model to the directory "
            "holding config.json and the weights"
        )
    if _looks_like_path(model):
        raise ModelNotFoundError(
            f"model directory {path.resolve()} does not exist; point model to a directory "
            "holding config.json and the weights, or to a hub id already in the local cache"
        )
    return ModelSource(model, model, False)


def _looks_like_path(model: str) -> bool:
    # Hub ids are 'name' or 'owner/name'; anything else can only be meant as a path.
    return (
        model.startswith(("/", ".", "~"))
        or model.endswith("/")
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
    )


def hub_cache_dir() -> str:
    """The Hugging Face hub cache directory transformers reads from (for messages)."""
    from transformers.utils import hub

    # transformers reads the location from huggingface_hub (not a dependency of ours).
    location = getattr(getattr(hub, "constants", None), "HF_HUB_CACHE", None)
    return str(location) if location else "the Hugging Face hub cache"


def not_in_cache_error(source: ModelSource) -> ModelNotFoundError:
    """The one-line error for a hub id whose files are not in the local cache."""
    return ModelNotFoundError(
        f"model {source.name!r} is not a local directory and not in the Hugging Face cache "
        f"({hub_cache_dir()}); llem never downloads: fetch it first with "
        f"`hf download {source.name}`, or set model to a local directory"
    )


def load_failed_error(source: ModelSource, what: str, exc: BaseException) -> BackendError:
    """A one-line error for a model directory or cache entry that transformers cannot load."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BackendError(
        f"cannot load the {what} of {source.name!r} from {source.location}: {detail}"
    )


def tokenizer_from(source: ModelSource) -> PreTrainedTokenizerBase:
    """Load the tokenizer of ``source``, left-padding, with a pad token (EOS if it had none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=True)
    except OSError as exc:
        if not source.is_local_dir:
            raise not_in_cache_error(source) from None
        raise load_failed_error(source, "tokenizer", exc) from None
    except ValueError as exc:
        raise load_failed_error(source, "tokenizer", exc) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise BackendError(
                f"the tokenizer of {source.name!r} has neither a pad nor an EOS token, so "
                "prompts cannot be batched; add a pad token to its tokenizer files"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(
    model: str, *, cache_dir: Path | str | None = None, tiny_seed: int = TINY_MODEL_SEED
) -> PreTrainedTokenizerBase:
    """The tokenizer of ``model`` as the backend uses it (for synthetic prompts before load)."""
    return tokenizer_from(resolve_model_source(model, cache_dir=cache_dir, tiny_seed=tiny_seed))

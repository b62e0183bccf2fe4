"""The built-in tiny model: ``llem/tiny``, a small Llama built locally, never downloaded.

:func:`ensure_tiny_model` builds it once into llem's cache directory (random weights
deterministic for ``seed``, a byte-level BPE tokenizer trained on the built-in prompts), and
the backend then loads it with ``from_pretrained`` like any other model directory.

Building is atomic: each builder writes into its own temporary directory beside the target
and renames it into place; the marker file is written last, so a directory with the marker
is complete. When two processes build at once, the first rename wins and the other one
discards its copy and uses the winner's (the two are identical).
"""

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Final

from llem_backend_pytorch.cache import resolve_cache_dir
from llem_backend_pytorch.errors import BackendError
from llem_schema.config import TINY_MODEL
from llem_schema.io import atomic_write_bytes

__all__ = [
    "TINY_MODEL",
    "TINY_MODEL_FORMAT",
    "TINY_MODEL_MARKER",
    "TINY_MODEL_SEED",
    "ensure_tiny_model",
    "tiny_model_dir",
    "tiny_model_revision",
]

logger = logging.getLogger(__name__)

TINY_MODEL_SEED: Final = 0
"""Default weight seed of the tiny model (independent of an experiment's sampling seed)."""
TINY_MODEL_FORMAT: Final = 2
"""Bumped whenever the tiny model's architecture, tokenizer or initialisation changes (2: the
tokenizer has a chat template; the weights are those of 1)."""
_REQUIRED_FILES: Final = ("config.json", "model.safetensors", "tokenizer.json")
TINY_MODEL_MARKER: Final = "llem-tiny.json"
"""Written last into a finished build; its presence means the directory is complete."""


def tiny_model_revision(seed: int = TINY_MODEL_SEED) -> str:
    """The tiny model's revision string, e.g. ``llem-tiny-v2-seed0``."""
    return f"llem-tiny-v{TINY_MODEL_FORMAT}-seed{seed}"


def tiny_model_dir(cache_dir: Path | str | None = None, *, seed: int = TINY_MODEL_SEED) -> Path:
    """Where the tiny model for ``seed`` lives: ``<cache>/models/llem-tiny-v<format>-seed<seed>``."""
    return resolve_cache_dir(cache_dir) / "models" / tiny_model_revision(seed)


def ensure_tiny_model(cache_dir: Path | str | None = None, *, seed: int = TINY_MODEL_SEED) -> Path:
    """The directory of the tiny model for ``seed``, built first if it is not there yet."""
    target = tiny_model_dir(cache_dir, seed=seed)
    if (target / TINY_MODEL_MARKER).is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        )
    except OSError as exc:
        raise BackendError(
            f"cannot create the tiny model under {target.parent}: {exc.strerror or exc}; "
            "set LLEM_CACHE_DIR to a writable directory"
        ) from None
    try:
        _build_into(staging, seed=seed)
        try:
            staging.rename(target)
        except OSError as exc:
            if not (target / TINY_MODEL_MARKER).is_file():
                raise BackendError(
                    f"cannot put the tiny model in place at {target}: {exc.strerror or exc}; "
                    "remove that directory and retry"
                ) from None
            logger.debug("another process finished %s first; using its build", target)
        else:
            logger.info("built the tiny model in %s", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_into(directory: Path, *, seed: int) -> None:
    from llem_backend_pytorch import _tiny_build
    from llem_schema import builtin_prompts

    description = _tiny_build.build_tiny_model(directory, seed=seed, texts=builtin_prompts())
    missing = [name for name in _REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        # transformers writes weights only on rank 0 once torch.distributed is initialised
        raise BackendError(
            f"building the tiny model wrote no {', '.join(missing)}: build it before "
            "torch.distributed starts (llem run does), or from rank 0"
        )
    marker = {"model": TINY_MODEL, "revision": tiny_model_revision(seed), **description}
    atomic_write_bytes(
        directory / TINY_MODEL_MARKER,
        (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    )

"""llem_backend_pytorch: runs inference with torch and transformers behind the backend
interface of ``llem_schema`` (:class:`llem_schema.InferenceBackend`).

Depends on ``llem_schema`` only among llem's packages. Importing it does not import torch or
transformers; they load when a model does.

>>> from llem_backend_pytorch import PyTorchBackend, load_prompts
>>> backend = PyTorchBackend()
>>> info = backend.load(config, device_index=None)
>>> timings = backend.run_batch(load_prompts(config)[:8], first_request_index=0)
"""

from llem_backend_pytorch.backend import MemorySource, PyTorchBackend
from llem_backend_pytorch.cache import CACHE_DIR_ENV, resolve_cache_dir
from llem_backend_pytorch.errors import (
    BackendError,
    BackendStateError,
    ModelNotFoundError,
    PromptSourceError,
)
from llem_backend_pytorch.flops import FLOPS_METHOD, ModelShape, estimate_generation_flops
from llem_backend_pytorch.loading import ModelSource, load_tokenizer, resolve_model_source
from llem_backend_pytorch.prompts import (
    builtin_prompts,
    load_prompts,
    read_prompt_file,
    select_prompts,
    synthetic_prompts,
)
from llem_backend_pytorch.timing import TokenTimer
from llem_backend_pytorch.tiny import (
    TINY_MODEL,
    TINY_MODEL_SEED,
    ensure_tiny_model,
    tiny_model_dir,
)

__all__ = [
    "CACHE_DIR_ENV",
    "FLOPS_METHOD",
    "TINY_MODEL",
    "TINY_MODEL_SEED",
    "BackendError",
    "BackendStateError",
    "MemorySource",
    "ModelNotFoundError",
    "ModelShape",
    "ModelSource",
    "PromptSourceError",
    "PyTorchBackend",
    "TokenTimer",
    "builtin_prompts",
    "ensure_tiny_model",
    "estimate_generation_flops",
    "load_prompts",
    "load_tokenizer",
    "read_prompt_file",
    "resolve_cache_dir",
    "resolve_model_source",
    "select_prompts",
    "synthetic_prompts",
    "tiny_model_dir",
]

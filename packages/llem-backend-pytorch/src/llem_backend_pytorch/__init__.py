"""llem_backend_pytorch: runs inference with torch and transformers behind the backend
interface of ``llem_schema`` (:class:`llem_schema.InferenceBackend`), registered as the
``pytorch`` backend in the entry-point group ``llem.backends``.

Depends on ``llem_schema`` only among llem's packages. Importing it does not import torch or
transformers; they load when a model does. Its settings, the ``pytorch:`` section of a
config, are :class:`PyTorchSettings`.

>>> from llem_backend_pytorch import PyTorchBackend
>>> backend = PyTorchBackend()
>>> info = backend.load_on(config, None)            # on the CPU
>>> timings = backend.generate_batch(["Why is the sky blue?", "Define entropy."])
"""

from llem_backend_pytorch.backend import PyTorchBackend
from llem_backend_pytorch.cache import CACHE_DIR_ENV, resolve_cache_dir
from llem_backend_pytorch.errors import (
    BackendError,
    BackendStateError,
    ModelNotFoundError,
)
from llem_backend_pytorch.flops import FLOPS_METHOD, ModelShape, estimate_generation_flops
from llem_backend_pytorch.loading import ModelSource, load_tokenizer, resolve_model_source
from llem_backend_pytorch.settings import PyTorchSettings
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
    "ModelNotFoundError",
    "ModelShape",
    "ModelSource",
    "PyTorchBackend",
    "PyTorchSettings",
    "TokenTimer",
    "ensure_tiny_model",
    "estimate_generation_flops",
    "load_tokenizer",
    "resolve_cache_dir",
    "resolve_model_source",
    "tiny_model_dir",
]

"""Which class implements each ``ExperimentConfig.backend``, imported only when used."""

from importlib import import_module

from llem_schema import ConfigError, ExperimentConfig, InferenceBackend
from llem_schema.config import TINY_MODEL

__all__ = ["BACKENDS", "create_backend", "prepare_model"]

BACKENDS: dict[str, str] = {"pytorch": "llem_backend_pytorch:PyTorchBackend"}
"""Backend name -> ``module:Class``. A new engine registers here and nowhere else."""


def create_backend(name: str) -> InferenceBackend:
    """A fresh backend instance for ``name``."""
    try:
        module_name, _, class_name = BACKENDS[name].partition(":")
    except KeyError:
        raise ConfigError(
            f"config key 'backend': unknown backend {name!r} (available: {', '.join(BACKENDS)})",
            key="backend",
        ) from None
    backend: InferenceBackend = getattr(import_module(module_name), class_name)()
    return backend


def prepare_model(config: ExperimentConfig) -> None:
    """Work to do once, in the launching process, before any worker starts.

    The built-in tiny model is built here: workers then find it ready instead of racing to
    build it (transformers writes weights only on rank 0 under torch.distributed).
    """
    if config.backend == "pytorch" and config.model == TINY_MODEL:
        from llem_backend_pytorch import ensure_tiny_model

        ensure_tiny_model()

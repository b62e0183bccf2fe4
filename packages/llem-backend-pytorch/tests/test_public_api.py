import subprocess
import sys
import types

import llem_backend_pytorch
from llem_backend_pytorch import PyTorchBackend, PyTorchSettings
from llem_schema import ExperimentConfig, InferenceBackend, LlemError


def test_public_api_is_what_init_exports() -> None:
    public = {
        name
        for name in dir(llem_backend_pytorch)
        if not name.startswith("_")
        and not isinstance(getattr(llem_backend_pytorch, name), types.ModuleType)
    }
    assert sorted(llem_backend_pytorch.__all__) == sorted(public)


def test_public_api_names() -> None:
    assert set(llem_backend_pytorch.__all__) == {
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
    }
    # prompts moved to llem_harness / llem_schema; memory is reported as llem_schema.PeakMemory
    for moved in ("PromptSourceError", "MemorySource", "load_prompts", "builtin_prompts"):
        assert not hasattr(llem_backend_pytorch, moved), moved


def test_errors_are_rooted_in_llem_error() -> None:
    for error_type in (
        llem_backend_pytorch.BackendError,
        llem_backend_pytorch.ModelNotFoundError,
        llem_backend_pytorch.BackendStateError,
    ):
        error = error_type("something went wrong")
        assert isinstance(error, LlemError)
        assert str(error) == "something went wrong"


def test_backend_conforms_to_the_protocol() -> None:
    backend: InferenceBackend = PyTorchBackend()  # checked by mypy
    assert isinstance(backend, InferenceBackend)
    assert PyTorchBackend.settings_model is PyTorchSettings  # readable from the class
    assert backend.settings_model is PyTorchSettings
    assert backend.name == "pytorch"
    assert ExperimentConfig().backend == "pytorch"  # the default backend is this one
    assert backend.version.startswith("transformers 5.")
    assert "; torch 2." in backend.version


def test_importing_the_package_does_not_import_torch_or_transformers() -> None:
    code = (
        "import sys, llem_backend_pytorch\n"
        "from importlib.metadata import entry_points\n"
        "from llem_backend_pytorch import PyTorchBackend, PyTorchSettings\n"
        "(plugin,) = entry_points(group='llem.backends', name='pytorch')\n"
        "assert plugin.load() is PyTorchBackend\n"
        "PyTorchBackend().version\n"
        "PyTorchSettings(batch_size=2)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""

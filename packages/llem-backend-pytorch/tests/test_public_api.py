import subprocess
import sys
import types

import llem_backend_pytorch
from llem_backend_pytorch import PyTorchBackend
from llem_schema import InferenceBackend, LlemError


def test_public_api_is_what_init_exports() -> None:
    public = {
        name
        for name in dir(llem_backend_pytorch)
        if not name.startswith("_")
        and not isinstance(getattr(llem_backend_pytorch, name), types.ModuleType)
    }
    assert sorted(llem_backend_pytorch.__all__) == sorted(public)


def test_errors_are_rooted_in_llem_error() -> None:
    for error_type in (
        llem_backend_pytorch.BackendError,
        llem_backend_pytorch.ModelNotFoundError,
        llem_backend_pytorch.BackendStateError,
        llem_backend_pytorch.PromptSourceError,
    ):
        error = error_type("something went wrong")
        assert isinstance(error, LlemError)
        assert str(error) == "something went wrong"


def test_backend_conforms_to_the_protocol() -> None:
    backend: InferenceBackend = PyTorchBackend()  # checked by mypy
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "pytorch"
    assert backend.version.startswith("transformers 5.")
    assert "; torch 2." in backend.version


def test_importing_the_package_does_not_import_torch_or_transformers() -> None:
    code = (
        "import sys, llem_backend_pytorch\n"
        "from llem_backend_pytorch import PyTorchBackend, load_prompts\n"
        "PyTorchBackend().version\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""

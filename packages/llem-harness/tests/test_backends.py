"""Backends are found through the entry-point group ``llem.backends``, the built-in PyTorch
backend exactly as a third party's. The broken ones here are installed for real: a module on
``sys.path`` and a ``.dist-info`` directory with its ``entry_points.txt``, as pip writes them.
"""

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from llem_harness import (
    BackendLoadError,
    BackendNotFoundError,
    backend_class,
    create_backend,
    installed_backends,
)
from llem_harness import backends as registry
from llem_harness.backends import SettingsModels
from llem_harness.errors import exit_code_for
from llem_schema import InferenceBackend, parse_config


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    registry._load.cache_clear()
    registry._settings_model.cache_clear()
    yield
    registry._load.cache_clear()
    registry._settings_model.cache_clear()


def install(
    site: Path, distribution: str, entries: dict[str, str], modules: dict[str, str]
) -> None:
    """Install ``distribution`` into ``site``: its modules and the metadata pip would write."""
    info = site / f"{distribution.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.2.3\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[llem.backends]\n{lines}")
    for name, text in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    return directory


def test_the_pytorch_backend_is_found_by_its_entry_point_like_any_other() -> None:
    found = installed_backends()
    assert found["pytorch"].target == "llem_backend_pytorch:PyTorchBackend"
    assert found["pytorch"].distribution == "llem-backend-pytorch"
    assert found["pytorch"].version == "0.1.0"
    cls = backend_class("pytorch")
    assert cls.__name__ == "PyTorchBackend"
    backend = create_backend("pytorch")
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "pytorch"


def test_an_unknown_backend_names_the_installed_ones_and_is_a_config_error(site: Path) -> None:
    with pytest.raises(BackendNotFoundError) as caught:
        backend_class("vllm")
    assert str(caught.value) == (
        f"config key 'backend': no backend 'vllm' is installed (installed: "
        f"{', '.join(sorted(installed_backends()))})"
    )
    assert (caught.value.name, caught.value.key) == ("vllm", "backend")
    assert exit_code_for(caught.value) == 2


def test_a_backend_whose_import_fails_names_its_package_and_the_reason(site: Path) -> None:
    install(
        site,
        "llem-broken-backend",
        {"broken": "broken_backend:Broken"},
        {"broken_backend": "import a_module_nobody_installed\n"},
    )
    assert installed_backends()["broken"].distribution == "llem-broken-backend"  # no import
    with pytest.raises(BackendLoadError) as caught:
        create_backend("broken")
    assert str(caught.value) == (
        "backend 'broken' (package llem-broken-backend) cannot be loaded: "
        "ModuleNotFoundError: No module named 'a_module_nobody_installed'"
    )
    assert caught.value.distribution == "llem-broken-backend"
    assert exit_code_for(caught.value) == 1


def test_an_entry_point_that_names_no_backend_class_is_refused(site: Path) -> None:
    install(
        site,
        "llem-odd-backend",
        {"function": "odd_backend:make", "half": "odd_backend:Half", "bare": "odd_backend:Bare"},
        {
            "odd_backend": """
                def make():
                    return None

                class Half:
                    def load(self, config, context): ...
                    def run(self, requests): ...

                class Bare:
                    def prepare(self, config): ...
                    def load(self, config, context): ...
                    def count_tokens(self, text): ...
                    def warmup(self, requests): ...
                    def run(self, requests): ...
                    def synchronize(self): ...
                    def peak_memory(self): ...
                    def estimate_flops(self, requests): ...
                    def unload(self): ...
            """
        },
    )
    with pytest.raises(BackendLoadError, match=r"odd_backend:make is not a class but function$"):
        backend_class("function")
    with pytest.raises(BackendLoadError) as caught:
        backend_class("half")
    assert str(caught.value) == (
        "backend 'half' (package llem-odd-backend) cannot be loaded: odd_backend:Half does not "
        "implement the backend interface (missing: prepare, count_tokens, warmup, synchronize, "
        "peak_memory, estimate_flops, unload)"
    )
    with pytest.raises(BackendLoadError) as caught:
        SettingsModels()["bare"]
    assert str(caught.value) == (
        "backend 'bare' (package llem-odd-backend) cannot be loaded: it has no settings_model "
        "(a pydantic model class of its settings, set in the class body: settings_model = "
        "MySettings)"
    )


def test_two_packages_claiming_one_name_are_both_named(site: Path) -> None:
    module = {"twin_backend": "class Twin: ...\n"}
    install(site, "llem-twin-a", {"twin": "twin_backend:Twin"}, module)
    install(site, "llem-twin-b", {"twin": "twin_backend:Twin"}, {})
    with pytest.raises(BackendLoadError) as caught:
        backend_class("twin")
    assert str(caught.value) == (
        "backend 'twin' cannot be loaded: more than one package registers it "
        "(llem-twin-a, llem-twin-b); uninstall all but one"
    )


def test_a_config_resolves_against_the_installed_backends_only_as_far_as_it_needs(
    site: Path,
) -> None:
    install(
        site,
        "llem-broken-backend",
        {"broken": "broken_backend:Broken"},
        {"broken_backend": "raise RuntimeError('kaput')\n"},
    )
    models = SettingsModels()
    assert {"broken", "pytorch"} <= set(models)  # knowing the names imports nothing
    config = parse_config({"pytorch": {"batch_size": 4}}, backends=models)
    assert config.backend_section() == {
        "batch_size": 4,
        "attn_implementation": None,
        "torch_compile": False,
    }
    with pytest.raises(BackendLoadError, match=r"cannot be loaded: RuntimeError: kaput$"):
        parse_config({"backend": "broken"}, backends=models)


def test_the_harness_names_no_backend() -> None:
    # Backends are found by entry point only: not even the built-in one is named (its import
    # is a broken import-linter contract, tests/test_import_contracts.py)
    source = Path(registry.__file__).parent
    files = sorted(source.rglob("*.py"))
    assert len(files) > 20
    assert [f.name for f in files if "pytorch" in f.read_text(encoding="utf-8").lower()] == []

"""The layer rules (docs/architecture.md) fail `lint-imports` when broken.

Each test copies the real sources to a temporary tree, breaks one rule there, and runs the
real `lint-imports` with the repository's `.importlinter` against the copy (PYTHONPATH puts
the copy ahead of the installed packages).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "apps" / "cli" / "src", *sorted((ROOT / "packages").glob("*/src"))]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(tree: Path | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree or ROOT,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for source in SOURCES:
        for package in source.iterdir():
            shutil.copytree(package, tmp_path / package.name)
    return tmp_path


def add_import(tree: Path, module: str, statement: str) -> None:
    path = tree.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def test_the_repository_keeps_every_contract() -> None:
    completed = lint(None)
    assert completed.returncode == 0, completed.stdout
    assert "0 broken" in completed.stdout


@pytest.mark.parametrize("external", ["pyarrow", "torch", "transformers", "pynvml"])
def test_schema_importing_a_heavy_package_breaks_the_schema_contract(
    tree: Path, external: str
) -> None:
    add_import(tree, "llem_schema.ids", f"import {external}")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "llem_schema imports pydantic only: no pyarrow, torch, transformers or pynvml BROKEN"
        in completed.stdout
    )
    assert f"llem_schema.ids -> {external}" in completed.stdout


def test_middle_packages_importing_each_other_breaks_independence(tree: Path) -> None:
    add_import(tree, "llem_persistence.errors", "import llem_energy")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "Backends, energy, persistence, store and reports never import each other BROKEN"
        in " ".join(completed.stdout.split())
    )


@pytest.mark.parametrize("external", ["typer", "torch"])
def test_the_reports_importing_a_front_end_or_an_engine_breaks_their_contract(
    tree: Path, external: str
) -> None:
    add_import(tree, "llem_report.power", f"import {external}")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "llem_report draws from result files: no torch, transformers, NVML, command line or "
        "terminal UI BROKEN"
    ) in " ".join(completed.stdout.split())
    assert f"llem_report.power -> {external}" in completed.stdout


def test_the_reports_importing_the_store_breaks_independence(tree: Path) -> None:
    add_import(tree, "llem_report.loading", "import llem_store")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "Backends, energy, persistence, store and reports never import each other BROKEN"
        in " ".join(completed.stdout.split())
    )


@pytest.mark.parametrize("external", ["pyarrow", "numpy", "rich"])
def test_the_store_importing_a_heavy_package_breaks_its_contract(tree: Path, external: str) -> None:
    add_import(tree, "llem_store.queries", f"import {external}")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "llem_store imports llem_schema and the standard library: no pyarrow, numpy, torch or "
        "pynvml BROKEN"
    ) in " ".join(completed.stdout.split())
    assert f"llem_store.queries -> {external}" in completed.stdout


def test_the_store_importing_persistence_breaks_independence(tree: Path) -> None:
    add_import(tree, "llem_store.errors", "import llem_persistence")
    completed = lint(tree)
    assert completed.returncode == 1
    assert "Backends, energy, persistence, store and reports never import each other BROKEN" in (
        " ".join(completed.stdout.split())
    )


LAYERS = (
    "The app sits above the harness, which sits above energy, persistence, the store and the "
    "reports, which sit above llem_schema BROKEN"
)


@pytest.mark.parametrize(
    ("module", "statement"),
    [("llem_schema.ids", "import llem_persistence"), ("llem_energy.errors", "import llem_harness")],
)
def test_importing_upwards_breaks_the_layers(tree: Path, module: str, statement: str) -> None:
    add_import(tree, module, statement)
    completed = lint(tree)
    assert completed.returncode == 1
    assert LAYERS in " ".join(completed.stdout.split())


@pytest.mark.parametrize("module", ["llem_harness.run", "llem.commands.run", "llem_schema.config"])
def test_importing_a_backend_breaks_the_plugin_rule(tree: Path, module: str) -> None:
    add_import(tree, module, "import llem_backend_pytorch")
    completed = lint(tree)
    assert completed.returncode == 1
    assert "No llem package imports a backend: backends are found by entry point BROKEN" in (
        " ".join(completed.stdout.split())
    )


def test_a_backend_importing_more_than_the_schema_breaks_its_contract(tree: Path) -> None:
    add_import(tree, "llem_backend_pytorch.errors", "import llem_harness")
    completed = lint(tree)
    assert completed.returncode == 1
    assert "A backend imports llem_schema and no other llem package BROKEN" in completed.stdout


@pytest.mark.parametrize("external", ["typer", "rich", "torch", "transformers"])
def test_the_harness_importing_a_ui_or_a_framework_breaks_its_contract(
    tree: Path, external: str
) -> None:
    add_import(tree, "llem_harness.worker", f"import {external}")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "The harness imports no command line, no terminal UI and no framework BROKEN"
        in completed.stdout
    )
    assert f"llem_harness.worker -> {external}" in completed.stdout


def test_rendering_importing_a_command_module_breaks_the_app_layers(tree: Path) -> None:
    add_import(tree, "llem.render.study", "import llem.commands._store")
    completed = lint(tree)
    assert completed.returncode == 1
    assert (
        "Inside the app, commands sit above rendering, which sits above errors and logging "
        "BROKEN" in " ".join(completed.stdout.split())
    )


@pytest.mark.parametrize(
    ("module", "external", "contract"),
    [
        (
            "llem_persistence.errors",
            "torch",
            "llem_persistence never imports torch, transformers or pynvml",
        ),
        ("llem_energy.errors", "transformers", "llem_energy never imports torch or transformers"),
        ("llem_backend_pytorch.errors", "pynvml", "llem_backend_pytorch never imports pynvml"),
    ],
)
def test_forbidden_externals_of_the_middle_packages(
    tree: Path, module: str, external: str, contract: str
) -> None:
    add_import(tree, module, f"import {external}")
    completed = lint(tree)
    assert completed.returncode == 1
    assert f"{contract} BROKEN" in completed.stdout

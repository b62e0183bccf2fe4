"""The example third-party backend (``examples/backend-plugin``) installed for real into a new
environment with llem and without torch, and measured through ``llem run --backend echo``.

The environment gets llem's packages built from this checkout and their locked third-party
dependencies from uv's cache (offline: nothing is downloaded); the PyTorch backend is not in
it, so nothing in the run can import torch.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llem_schema import ExperimentResult
from llem_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "backend-plugin"
LLEM = ["packages/llem-schema", "packages/llem-energy", "packages/llem-persistence"]
LLEM += ["packages/llem-store"]
LLEM += ["packages/llem-harness", "apps/cli"]


def uv_binary() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        pytest.fail("this test installs packages with uv, which is not on PATH (pip install uv)")
    return found


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new environment holding llem, its dependencies and the echo backend, no torch."""
    uv = uv_binary()
    work = tmp_path_factory.mktemp("plugin-env")
    requirements = work / "requirements.txt"
    run(uv, "export", "--frozen", "--package", "llem", "--no-emit-workspace", "--no-dev",
        "--no-hashes", "--no-header", "--quiet", "-o", requirements)  # fmt: skip
    pinned = [line for line in requirements.read_text().splitlines() if line[:1].isalnum()]
    requirements.write_text("\n".join(pinned) + "\n")
    environment = work / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, environment)
    python = environment / "bin" / "python"
    run(uv, "pip", "sync", "--offline", "--quiet", "--python", python, requirements)
    run(uv, "pip", "install", "--offline", "--quiet", "--no-deps", "--python", python,
        *LLEM, PLUGIN)  # fmt: skip
    return environment


def llem_in(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "llem"), *args],
        cwd=cwd,
        env=os.environ | {"COLUMNS": "200", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_installed_plugin_is_listed_and_torch_is_not_there(venv: Path, tmp_path: Path) -> None:
    listed = llem_in(venv, "backends", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {
            "name": "echo",
            "package": "llem-echo-backend",
            "version": "0.1.0",
            "target": "llem_echo:EchoBackend",
            "default": False,
        }
    ]
    for absent in ("torch", "transformers", "llem_backend_pytorch"):
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", f"import {absent}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode == 1
        assert f"No module named '{absent}'" in probe.stderr


def test_llem_run_measures_with_the_plugin_end_to_end(venv: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    completed = llem_in(
        venv, "run", "--backend", "echo", "-n", "8", "--max-new-tokens", "4", "--batch-size",
        "3", "--set", "echo.token_delay_ms=2", "-o", str(results), cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    (saved,) = [line for line in completed.stdout.splitlines() if line.startswith("result: ")]
    directory = Path(saved.removeprefix("result: "))
    assert completed.stdout.rstrip().splitlines()[-1] == f"id: {directory.name}"
    result = ExperimentResult.from_json(directory)
    assert (result.backend, result.backend_version) == ("echo", "echo 0.1.0")
    assert result.effective_config["echo"] == {"batch_size": 3, "token_delay_ms": 2.0}
    (process,) = result.process_results
    assert [r.batch_index for r in process.requests] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert result.output_tokens == sum(r.output_tokens for r in process.requests) > 0
    assert result.latency.ttft is not None
    assert result.latency.ttft.min_ms >= 2.0  # the first token waited one delay
    with ResultStore(results / "llem.db", create=False) as store:
        assert store.get(result.experiment_id).backend == "echo"


def test_without_its_backend_llem_says_what_is_installed(venv: Path, tmp_path: Path) -> None:
    default = llem_in(venv, "run", "-n", "2", cwd=tmp_path)
    assert (default.returncode, default.stderr) == (
        2,
        "error: config key 'backend': no backend 'pytorch' is installed (installed: echo); "
        "install the package that provides it (the built-in one: pip install 'llem[pytorch]'); "
        "`llem backends` lists them\n",
    )
    misspelt = llem_in(venv, "run", "--backend", "echo", "--set", "echo.batchsize=2", cwd=tmp_path)
    assert misspelt.returncode == 2
    assert misspelt.stderr == (
        "error: unknown config key 'echo.batchsize'; did you mean 'batch_size'? (allowed under echo: "
        "batch_size, token_delay_ms)\n"
    )
    assert not (tmp_path / "results").exists()


def test_the_plugin_s_own_tests_pass() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(PLUGIN / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3 passed" in completed.stdout

"""The ``llem`` command as a user runs it: a real subprocess, real exit codes and messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

from llem_harness import installed_backends
from llem_schema import SCHEMA_VERSION
from llem_schema.testing import example_result


def llem(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"COLUMNS": "200"},  # no wrapping inside rich's error box
    )


def test_help_lists_the_commands() -> None:
    completed = llem("--help")
    assert completed.returncode == 0
    for command in ("run", "aggregate", "backends", "results", "db", "config", "schema"):
        assert f"\n  {command} " in completed.stdout, command


def test_version_names_both_packages() -> None:
    completed = llem("--version")
    assert completed.returncode == 0
    assert completed.stdout.startswith("llem 0.1.0 (llem-schema 0.1.0)")


def test_schema_export_prints_a_schema_that_validates_a_saved_result(tmp_path: Path) -> None:
    completed = llem("schema", "export")
    assert completed.returncode == 0
    schema = json.loads(completed.stdout)
    assert schema["x-llem-schema-version"] == SCHEMA_VERSION
    directory = example_result().save(tmp_path)
    jsonschema.validate(json.loads((directory / "result.json").read_text()), schema)


def test_schema_export_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "config.schema.json"
    completed = llem("schema", "export", "--kind", "config", "-o", str(target))
    assert completed.returncode == 0
    assert completed.stderr.strip() == f"wrote {target}"
    assert json.loads(target.read_text())["title"] == "ExperimentConfig"


def test_an_output_in_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "schema.json"
    completed = llem("schema", "export", "-o", str(target))
    assert completed.returncode == 2
    assert completed.stderr == f"error: cannot write {target}: No such file or directory\n"


def test_an_unknown_kind_is_a_usage_error_with_exit_2() -> None:
    completed = llem("schema", "export", "--kind", "results")
    assert completed.returncode == 2
    assert "'results' is not one of 'result', 'raw', 'config', 'study'" in completed.stderr


def test_schema_export_covers_the_study_documents() -> None:
    titles = {}
    for kind in ("study", "manifest", "study-config"):
        completed = llem("schema", "export", "--kind", kind)
        assert completed.returncode == 0, completed.stderr
        titles[kind] = json.loads(completed.stdout)["title"]
    assert titles == {
        "study": "StudyResult",
        "manifest": "StudyManifest",
        "study-config": "StudyConfig",
    }


def test_importing_the_cli_does_not_import_torch() -> None:
    probe = "import sys, llem.cli; print(sorted(m for m in ('torch', 'transformers', 'pyarrow') if m in sys.modules))"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_config_validate_prints_the_hash_and_show_resolves_presets(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("n: 40\ndecoder:\n  preset: factual\n")
    completed = llem("config", "validate", str(path))
    assert completed.returncode == 0
    assert completed.stdout.startswith(f"{path}: valid (measurement_config_hash ")
    shown = llem("config", "show", str(path), "--json", "--set", "decoder.top_k=7")
    assert shown.returncode == 0
    decoder = json.loads(shown.stdout)["decoder"]
    assert decoder == {
        "preset": "factual",
        "mode": "sampling",
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 7,
        "ignore_eos": False,
    }


def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("precision: fp8\n")
    completed = llem("config", "validate", str(path))
    assert completed.returncode == 2
    assert completed.stderr == (
        f"error: {path}: config key 'precision': Input should be 'fp32', 'fp16' or 'bf16' "
        "(got 'fp8')\n"
    )


def test_a_malformed_set_is_a_usage_error() -> None:
    completed = llem("config", "show", "--set", "n")
    assert completed.returncode == 2
    assert completed.stderr == "error: --set expects KEY=VALUE, got 'n'\n"


def test_run_dry_run_shows_the_plan_without_running(tmp_path: Path) -> None:
    completed = llem(
        "run",
        "--dry-run",
        "-n",
        "40",
        "--batch-size",
        "8",
        "--num-processes",
        "2",
        "--no-baseline",
        "-o",
        str(tmp_path / "out"),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[:2] == [
        "would run llem/tiny on backend pytorch (batch_size=8, attn_implementation=None, "
        "torch_compile=False), fp32, on 40 builtin prompts: 2 process(es), 128 new tokens per "
        "request",
        f"energy: auto at 10 Hz; baseline: off; results into {tmp_path / 'out'}/",
    ]
    assert not (tmp_path / "out").exists()


def test_backends_lists_what_is_installed_and_where_it_comes_from() -> None:
    completed = llem("backends", "--json")
    assert completed.returncode == 0, completed.stderr
    listed = {entry["name"]: entry for entry in json.loads(completed.stdout)}
    assert listed["pytorch"] == {
        "name": "pytorch",
        "package": "llem-backend-pytorch",
        "version": "0.1.0",
        "target": "llem_backend_pytorch:PyTorchBackend",
        "default": True,
    }
    table = llem("backends")
    assert table.returncode == 0
    assert "pytorch (default)" in table.stdout
    assert "llem-backend-pytorch" in table.stdout


def test_an_unknown_backend_is_one_line_listing_the_installed_ones_and_exit_2() -> None:
    installed = ", ".join(sorted(installed_backends()))  # pytorch, and any you installed
    completed = llem("run", "--backend", "vllm", "--dry-run")
    assert completed.returncode == 2
    assert completed.stderr == (
        f"error: config key 'backend': no backend 'vllm' is installed (installed: {installed}); "
        "install the package that provides it; `llem backends` lists them\n"
    )
    misspelt = llem("run", "--set", "pytorch.batch_sise=2", "--dry-run")
    assert misspelt.returncode == 2
    assert misspelt.stderr == (
        "error: unknown config key 'pytorch.batch_sise'; did you mean 'batch_size'? "
        "(allowed under pytorch: attn_implementation, batch_size, torch_compile)\n"
    )


def test_importing_llem_loads_no_command_line_and_no_framework() -> None:
    probe = (
        "import sys, llem; "
        "assert callable(llem.measure) and callable(llem.run_study); "
        "config = llem.ExperimentConfig(n=2); "
        "print(sorted(m for m in ('typer', 'rich', 'click', 'torch', 'transformers', "
        "'llem_backend_pytorch') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"


def test_a_missing_backend_says_how_to_get_one() -> None:
    from llem.errors import exit_code_for, message_for
    from llem_schema import BackendNotFoundError

    missing = BackendNotFoundError("pytorch", ["echo"])
    assert message_for(missing) == (
        "config key 'backend': no backend 'pytorch' is installed (installed: echo); install "
        "the package that provides it (the built-in one: pip install 'llem[pytorch]'); "
        "`llem backends` lists them"
    )
    assert exit_code_for(missing) == 2
    assert message_for(BackendNotFoundError("vllm", [])).endswith(
        "(installed: none); install the package that provides it; `llem backends` lists them"
    )

"""The ``llem`` command as a user runs it: a real subprocess, real exit codes and messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

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
    for command in ("run", "aggregate", "results", "db", "config", "schema"):
        assert f"│ {command} " in completed.stdout, command


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


def test_an_unwritable_output_is_one_line_and_exit_1(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "schema.json"
    completed = llem("schema", "export", "-o", str(target))
    assert completed.returncode == 1
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
        "would run llem/tiny (pytorch, fp32) on 40 builtin prompts: 2 process(es), 3 batch(es) "
        "of up to 8 each, 128 new tokens per request",
        f"energy: auto at 10 Hz; baseline: off; results into {tmp_path / 'out'}/",
    ]
    assert not (tmp_path / "out").exists()

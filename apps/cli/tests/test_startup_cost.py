"""``llem results list`` answers without importing torch, transformers, pyarrow, or any of
llem's pydantic models (the bench measures its wall time; this test keeps the imports from
creeping back).

pydantic itself is not in the list: typer (0.2x) coerces every command-line parameter through
pydantic TypeAdapters, so any ``llem`` command that runs loads it. ``llem --help`` does not.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "torch",
    "transformers",
    "pyarrow",
    "yaml",
    "llem_energy",
    "llem_backend_pytorch",
    "llem_schema.config",
    "llem_schema.result",
    "llem_persistence.staging",
    "llem_persistence.exporters",
)

PROBE = """
import json, sys
sys.argv = ["llem", *sys.argv[1:]]
from llem.cli import main
try:
    main()
except SystemExit as done:
    code = done.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"exit_code": code, "heavy": heavy}}), file=sys.stderr)
"""


def run_in_process(*args: str) -> tuple[str, dict[str, object]]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report: dict[str, object] = json.loads(completed.stderr.strip().splitlines()[-1])
    return completed.stdout, report


@pytest.mark.parametrize("output", [(), ("--json",)])
def test_results_list_loads_no_heavy_module(results: Path, output: tuple[str, ...]) -> None:
    stdout, report = run_in_process("results", "list", "--db", str(results / "llem.db"), *output)
    assert report == {"exit_code": 0, "heavy": []}
    assert "exp_3" in stdout  # it did list the experiments


def test_help_loads_neither_a_heavy_module_nor_pydantic() -> None:
    stdout, report = run_in_process("--help")
    assert report == {"exit_code": 0, "heavy": []}
    assert "results" in stdout
    probe = "import sys, llem.cli; print('pydantic' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "False"

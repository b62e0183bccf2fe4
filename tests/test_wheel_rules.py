"""`.ci/check_wheels.py` catches a wheel whose Requires-Dist breaks the dependency rules."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "llem": [
        "llem-schema",
        "llem-harness",
        "typer>=0.12",
        'llem-backend-pytorch; extra == "pytorch"',
    ],
    "llem-harness": ["llem-schema", "llem-energy", "llem-persistence", "llem-store", "pyyaml>=6"],
    "llem-schema": ["pydantic<3,>=2.9"],
    "llem-persistence": ["llem-schema", "pyarrow>=18"],
    "llem-store": ["llem-schema"],
    "llem-report": ["llem-schema", "matplotlib>=3.9", "numpy>=2.0", "pyarrow>=18"],
    "llem-energy": ["llem-schema", "nvidia-ml-py>=12"],
    "llem-backend-pytorch": ["llem-schema", "torch>=2.4", "transformers>=4.45"],
    "llem-backend-openai": ["llem-schema", "httpx2>=2.16"],
}


def build(directory: Path, requires: dict[str, list[str]]) -> Path:
    directory.mkdir()
    for name, requirements in requires.items():
        stem = f"{name.replace('-', '_')}-0.1.0"
        lines = ["Metadata-Version: 2.4", f"Name: {name}", "Version: 0.1.0"]
        lines += [f"Requires-Dist: {r}" for r in requirements]
        with zipfile.ZipFile(directory / f"{stem}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{stem}.dist-info/METADATA", "\n".join(lines) + "\n")
    return directory


def check(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check_wheels.py"), str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_wheels_that_follow_the_rules_pass(tmp_path: Path) -> None:
    completed = check(build(tmp_path / "dist", GOOD))
    assert completed.returncode == 0, completed.stderr
    assert "9 wheels checked, 0 problem(s)" in completed.stdout


def test_the_store_requiring_more_than_the_schema_fails(tmp_path: Path) -> None:
    completed = check(
        build(tmp_path / "dist", GOOD | {"llem-store": ["llem-schema", "pyarrow>=18"]})
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "FAIL llem-store requires pyarrow, which it must never require",
        "FAIL llem-store must require exactly llem-schema; it requires llem-schema, pyarrow",
    ]


def test_pyarrow_in_the_schema_fails(tmp_path: Path) -> None:
    completed = check(
        build(tmp_path / "dist", GOOD | {"llem-schema": ["pydantic>=2.9", "pyarrow"]})
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "FAIL llem-schema requires pyarrow, which it must never require",
        "FAIL llem-schema must require exactly pydantic; it requires pyarrow, pydantic",
    ]


def test_torch_outside_the_backend_fails(tmp_path: Path) -> None:
    completed = check(
        build(tmp_path / "dist", GOOD | {"llem-persistence": ["llem-schema", "torch"]})
    )
    assert completed.returncode == 1
    assert completed.stderr.strip() == (
        "FAIL llem-persistence requires torch, which only llem-backend-pytorch may require"
    )


def test_nvml_outside_energy_and_the_unofficial_pynvml_fail(tmp_path: Path) -> None:
    completed = check(
        build(
            tmp_path / "dist",
            GOOD | {"llem": ["llem-schema", "nvidia_ml_py"], "llem-energy": ["pynvml"]},
        )
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "FAIL llem requires nvidia-ml-py, which only llem-energy may require",
        "FAIL llem-energy requires pynvml, which no llem distribution may require",
    ]


def test_a_missing_wheel_fails_and_optional_extras_are_ignored(tmp_path: Path) -> None:
    requires = {k: v for k, v in GOOD.items() if k != "llem-energy"}
    requires["llem"] = ["llem-schema", 'torch; extra == "gpu"']
    completed = check(build(tmp_path / "dist", requires))
    assert completed.returncode == 1
    assert completed.stderr.strip() == "FAIL llem-energy: no wheel was built"


def test_a_backend_required_by_llem_itself_fails(tmp_path: Path) -> None:
    completed = check(
        build(
            tmp_path / "dist",
            GOOD | {"llem-harness": ["llem-schema", "llem-backend-pytorch", "rich"]},
        )
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "FAIL llem-harness requires llem-backend-pytorch, which it must never require",
        "FAIL llem-harness requires rich, which it must never require",
    ]


def test_matplotlib_below_the_reports_fails(tmp_path: Path) -> None:
    completed = check(
        build(tmp_path / "dist", GOOD | {"llem-harness": ["llem-schema", "matplotlib>=3.9"]})
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "FAIL llem-harness requires matplotlib, which it must never require"
    ]

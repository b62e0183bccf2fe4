"""`bench/gpu_check.py`, the prepared GPU check, run as on a machine without a GPU: it takes
the simulated path, prints every section in one table, and writes every figure to its JSON."""

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "counter vs integrated",
    "sampling rate",
    "NVML latency",
    "overhead",
    "J/token CV",
    "baseline",
    "wall time",
)
RATE_FIGURES = (
    "requested_hz",
    "duration_s",
    "tokens",
    "counter_j",
    "integrated_j",
    "relative_difference",
    "mean_power_w",
    "counter_update_period_s",
    "samples",
    "achieved_hz",
    "achieved_ratio",
    "window_rate_hz",
    "gaps",
)
FIGURES = (
    ("nvml_latency", "read_sample_ms", "median"),
    ("nvml_latency", "read_sample_ms", "p99"),
    ("nvml_latency", "energy_counter_ms", "median"),
    ("nvml_latency", "energy_counter_ms", "p99"),
    ("overhead", "plain_tokens_per_s"),
    ("overhead", "window_tokens_per_s"),
    ("overhead", "ratio"),
    ("j_per_token_cv", "mean_j_per_token"),
    ("j_per_token_cv", "stdev_j_per_token"),
    ("j_per_token_cv", "cv"),
    ("baseline", "power_w"),
    ("baseline", "duration_s"),
    ("baseline", "temperature_c"),
    ("model", "parameters"),
    ("wall_time_s",),
)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def figure(document: dict[str, Any], path: tuple[str, ...]) -> object:
    value: Any = document
    for key in path:
        value = value[key]
    return value


@pytest.mark.slow
def test_gpu_check_runs_simulated_without_a_gpu(tmp_path: Path, llem_env: dict[str, str]) -> None:
    # no CUDA device for torch, whatever the machine has: the simulated path
    env = {k: v for k, v in llem_env.items() if k != "LLEM_SIMULATED_GPUS"}
    env |= {"CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "figures" / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    assert "SIMULATED GPU" in done.stdout
    assert "NOT a measurement" in done.stdout
    rows = [
        line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")
    ]
    assert set(SECTIONS) <= set(rows), rows
    assert "ERROR" not in done.stdout
    assert str(out.resolve()) in done.stdout
    assert "wall time" in done.stdout

    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["simulated"] is True
    assert document["simulated_reason"]
    assert document["quick"] is True
    assert document["errors"] == {}
    rates = document["counter_vs_integrated"]
    assert [rate["requested_hz"] for rate in rates] == [10.0, 100.0]
    for rate in rates:
        for name in RATE_FIGURES:
            assert is_number(rate[name]), (rate["requested_hz"], name, rate[name])
        assert "simulated_gpus" in rate["warnings"]
    assert [rate["requested_hz"] for rate in document["sampling_rate"]] == [10.0, 100.0]
    for path in FIGURES:
        assert is_number(figure(document, path)), (path, figure(document, path))
    runs = document["j_per_token_cv"]["runs"]
    assert len(runs) == 5
    assert all(is_number(run["j_per_token"]) for run in runs)
    baseline = document["baseline"]
    assert baseline["method"] == "fresh"
    assert isinstance(baseline["problems"], list)
    assert baseline["idle"] is (not baseline["problems"])
    # a GPU at work must not pass for idle: the check the baseline relies on
    assert baseline["busy_window_idle"] is False
    assert baseline["busy_window_problems"]
    assert 0 < document["wall_time_s"] < document["budget_s"]


def test_require_gpu_refuses_the_simulated_path(tmp_path: Path, llem_env: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--require-gpu", "--json", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env=llem_env | {"CUDA_VISIBLE_DEVICES": ""},
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == "error: --require-gpu, but torch sees no CUDA GPU"
    assert not (tmp_path / "x.json").exists()

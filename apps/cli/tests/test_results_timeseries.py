"""``llem results timeseries``: a summary per GPU of an experiment's power samples, read from
its real Parquet sidecar, and the samples written out as CSV or Parquet."""

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pyarrow.parquet as pq
import pytest

from llem_persistence import write_timeseries
from llem_schema import PowerSample
from llem_schema.testing import example_result
from llem_store import ResultStore


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


@pytest.fixture
def sampled(tmp_path: Path) -> tuple[Path, list[float], float]:
    """A result whose sidecar holds two GPUs at 10 Hz, from 0.5 s before its window to 0.5 s
    after, GPU 0 at 100 W and GPU 1 at 250 W; returns the store, the times and the window."""
    result = example_result()
    window_s = result.duration_s
    times = [round(-0.5 + 0.1 * step, 6) for step in range(int((window_s + 1.0) / 0.1) + 1)]
    samples = [
        PowerSample(timestamp_s=t, gpu_index=gpu, gpu_power_w=watts, gpu_temperature_c=50.0 + gpu)
        for t in times
        for gpu, watts in ((0, 100.0), (1, 250.0))
    ]
    source = tmp_path / "samples.parquet"
    write_timeseries(samples, source)
    directory = result.save(tmp_path / "results", timeseries_source=source)
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(directory)
    return tmp_path / "results" / "llem.db", times, window_s


def test_the_summary_says_each_gpus_samples_rate_and_window_energy(
    llem: Llem, sampled: tuple[Path, list[float], float]
) -> None:
    db, times, window_s = sampled
    outcome = llem("results", "timeseries", "tiny_pytorch", "--json", "--db", str(db))
    assert outcome.exit_code == 0, outcome.stderr
    devices = json.loads(outcome.stdout)
    inside = [t for t in times if 0.0 <= t <= window_s]
    assert [d["gpu_index"] for d in devices] == [0, 1]
    for device, watts in zip(devices, (100.0, 250.0), strict=True):
        assert device["samples"] == len(times)
        assert device["rate_hz"] == pytest.approx(10.0)
        assert device["longest_gap_s"] == pytest.approx(0.1)
        assert device["mean_power_w"] == pytest.approx(watts)
        assert device["window_energy_j"] == pytest.approx(watts * (inside[-1] - inside[0]))
    table = llem("results", "timeseries", "tiny_pytorch", "--db", str(db))
    assert table.exit_code == 0, table.stderr
    first = table.stdout.splitlines()[0]
    assert first.endswith(f"{2 * len(times)} samples of 2 GPU(s); window {window_s:.1f} s")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_the_samples_are_written_out(
    llem: Llem, sampled: tuple[Path, list[float], float], tmp_path: Path, suffix: str
) -> None:
    db, times, _ = sampled
    target = tmp_path / f"ts.{suffix}"
    outcome = llem("results", "timeseries", "tiny_pytorch", "-o", str(target), "--db", str(db))
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stderr == f"{2 * len(times)} samples written to {target}\n"
    if suffix == "parquet":
        rows = pq.read_table(target).to_pylist()
    else:
        with target.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(times)
    assert {float(row["gpu_power_w"]) for row in rows} == {100.0, 250.0}
    again = llem("results", "timeseries", "tiny_pytorch", "-o", str(target), "--db", str(db))
    assert (again.exit_code, again.stderr) == (
        2,
        f"error: {target} exists; choose another file, or pass --overwrite\n",
    )


def test_a_result_without_a_timeseries_says_so(llem: Llem, tmp_path: Path) -> None:
    directory = example_result().save(tmp_path / "results")
    with ResultStore(tmp_path / "results" / "llem.db") as store:
        store.ingest(directory)
    outcome = llem(
        "results", "timeseries", str(directory), "--db", str(tmp_path / "results" / "llem.db")
    )
    assert outcome.exit_code == 2
    assert outcome.stderr == (
        f"error: {directory}: this result has no timeseries (energy was not sampled)\n"
    )

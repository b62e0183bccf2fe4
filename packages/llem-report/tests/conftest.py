"""Results to draw, made with ``llem_schema.testing`` and written to disk as llem writes them:
a two-GPU run with a power timeseries, and a 2x2 study of two cycles.

Test modules name the fixtures' types themselves; nothing here is imported by them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem_schema import ExperimentResult, StudyManifest, expand_study, parse_study, summarize_study
from llem_schema.testing import EXAMPLE_BACKENDS, EXAMPLE_START, example_raw_result, example_result

T0 = datetime(2026, 11, 22, 14, 0, 0, tzinfo=UTC)
WATTS = (100.0, 250.0)
"""The power of GPU 0 and GPU 1 in the sampled run (the tests repeat it)."""


def _power_table(
    window_s: float, *, rate_hz: float = 10.0, watts: tuple[float, ...] = WATTS
) -> pa.Table:
    """Samples of each GPU at ``rate_hz`` from 0.5 s before the window to 0.5 s after, each
    GPU at its constant power, temperature 50 + index deg C; rows by time, then GPU."""
    steps = round((window_s + 1.0) * rate_hz) + 1
    times = np.round(-0.5 + np.arange(steps) / rate_hz, 9)
    gpus = len(watts)
    return pa.table(
        {
            "timestamp_s": pa.array(np.repeat(times, gpus)),
            "gpu_index": pa.array(np.tile(np.arange(gpus), steps), pa.int32()),
            "gpu_power_w": pa.array(np.tile(np.array(watts), steps)),
            "gpu_temperature_c": pa.array(np.tile(50.0 + np.arange(gpus), steps)),
        }
    )


def _two_gpu_result() -> ExperimentResult:
    """A run of two processes, one GPU each (NVML indices 0 and 1), baselines 5 W."""
    raws = [
        example_raw_result(process_index=index, num_processes=2, seed=index, n_requests=12)
        for index in range(2)
    ]
    return example_result(raws, timeseries="timeseries.parquet")


@pytest.fixture
def power_table() -> Callable[..., pa.Table]:
    """Makes the samples of the two-GPU run (see ``_power_table``)."""
    return _power_table


@pytest.fixture
def two_gpu() -> ExperimentResult:
    """The two-GPU run, not saved."""
    return _two_gpu_result()


@pytest.fixture
def sampled_dir(tmp_path: Path) -> Path:
    """The two-GPU run saved with its sidecar (:func:`power_table` of its window)."""
    result = _two_gpu_result()
    source = tmp_path / "samples.parquet"
    pq.write_table(_power_table(result.duration_s), source)
    return result.save(tmp_path / "results", timeseries_source=source)


@dataclass(frozen=True)
class StudyOnDisk:
    directory: Path
    energy_j: dict[int, list[float]]
    """Point index -> the energy of each cycle."""


STUDY_FILE = {
    "name": "grid",
    "base": {"n": 8, "max_new_tokens": 16},
    "sweep": {"pytorch.batch_size": [1, 4], "max_new_tokens": [8, 16]},
    "cycles": 2,
    "order": "sequential",
}


@pytest.fixture
def study_dir(tmp_path: Path) -> StudyOnDisk:
    """A completed 2x2 study (batch size x max new tokens), two cycles per point, with its
    manifest, each run's result directory and ``study.json``. Energy falls with batch size
    and rises with the token limit; the cycles differ by 4 J."""
    plan = expand_study(parse_study(STUDY_FILE), backends=EXAMPLE_BACKENDS)
    directory = tmp_path / "studies" / "grid_2026-11-22T14-00-00"
    manifest = StudyManifest.new(plan, study_id=directory.name, study_name="grid", created_at=T0)
    energies: dict[int, list[float]] = {}
    results: dict[int, ExperimentResult] = {}
    for run in plan.runs:
        point = plan.point(run.point_index)
        batch = point.overrides["pytorch.batch_size"]
        tokens = point.overrides["max_new_tokens"]
        assert isinstance(batch, int)
        assert isinstance(tokens, int)
        energy_j = 200.0 / batch + 5.0 * tokens + 4.0 * run.cycle
        energies.setdefault(run.point_index, []).append(energy_j)
        start = EXAMPLE_START + timedelta(minutes=run.run_index)
        raw = example_raw_result(
            config=point.config, seed=run.run_index, energy_j=energy_j, start_time=start
        )
        result = example_result([raw], config=point.config).model_copy(
            update={"experiment_id": f"grid-run-{run.run_index}"}
        )
        saved = result.save(directory)
        results[run.run_index] = result
        manifest = manifest.with_entry(
            run.run_index,
            status="completed",
            started_at=start,
            finished_at=start + timedelta(seconds=30),
            experiment_id=result.experiment_id,
            result_path=saved.name,
            updated_at=start + timedelta(seconds=30),
        )
    manifest = manifest.with_status("completed", updated_at=T0 + timedelta(hours=1))
    manifest.save(directory)
    summarize_study(
        manifest, results, cv_warning_threshold=0.5, finished_at=T0 + timedelta(hours=1)
    ).save(directory)
    return StudyOnDisk(directory, energies)

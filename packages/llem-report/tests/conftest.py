"""Results to draw, made with ``llem_schema.testing`` and written to disk as llem writes them:
a two-GPU run with a power timeseries, and a 2x2 study of two cycles
(``llem_schema.testing.example_study``).

Test modules name the fixtures' types themselves; nothing here is imported by them.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import JsonValue

from llem_schema import ExperimentResult
from llem_schema.testing import example_raw_result, example_result, example_study

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


def _energy_j(overrides: Mapping[str, JsonValue], cycle: int) -> float:
    """Energy falls with batch size and rises with the token limit; cycles differ by 4 J."""
    batch, tokens = overrides["pytorch.batch_size"], overrides["max_new_tokens"]
    assert isinstance(batch, int)
    assert isinstance(tokens, int)
    return 200.0 / batch + 5.0 * tokens + 4.0 * cycle


@pytest.fixture
def study_dir(tmp_path: Path) -> StudyOnDisk:
    """A completed 2x2 study (batch size 1, 4 x max new tokens 8, 16), two cycles per point,
    with its manifest, each run's result directory and ``study.json``."""
    return StudyOnDisk(example_study(tmp_path / "studies", energy_j=_energy_j))

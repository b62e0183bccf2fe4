"""Fixtures of the persistence tests: result directories on disk, built from one template."""

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from llem_schema import ExperimentResult, MeasurementWarning
from llem_schema.testing import EXAMPLE_START, example_config, example_raw_result, example_result

MakeResult = Callable[..., Path]

FEW_PROMPTS = MeasurementWarning(
    code="few_prompts",
    message=(
        "only 6 prompts were measured (fewer than 30): latency percentiles and per-token "
        "energy are unstable; measure at least 30 per process"
    ),
    figures={"prompts": 6, "min_prompts": 30},
)
"""The template's one measurement warning."""


@pytest.fixture(scope="session")
def template_result() -> ExperimentResult:
    config = example_config(n=12, precision="fp16", pytorch={"batch_size": 4})
    raws = [
        example_raw_result(process_index=i, num_processes=2, n_requests=6, seed=i, config=config)
        for i in range(2)
    ]
    return example_result(raws, config=config, measurement_warnings=[FEW_PROMPTS])


@pytest.fixture
def make_result(tmp_path: Path, template_result: ExperimentResult) -> MakeResult:
    """Save a copy of the template as a new experiment under ``tmp_path/results``; returns the
    result directory. ``model``, ``hours`` (start offset) and ``warnings`` (in place of the
    template's measurement warnings) vary it."""

    def make(
        experiment_id: str,
        *,
        model: str = "llem/tiny",
        hours: float = 0.0,
        root: Path | None = None,
        warnings: Sequence[MeasurementWarning] | None = None,
    ) -> Path:
        shift = timedelta(hours=hours)
        result = template_result.model_copy(
            update={
                "experiment_id": experiment_id,
                "model": model,
                "effective_config": template_result.effective_config | {"model": model},
                "start_time": EXAMPLE_START + shift,
                "end_time": template_result.end_time + shift,
                "measurement_warnings": list(
                    template_result.measurement_warnings if warnings is None else warnings
                ),
            }
        )
        # a copy made without validation: check it is still a result llem accepts
        result = ExperimentResult.model_validate(result.model_dump())
        return result.save(root or tmp_path / "results")

    return make

"""Fixtures of the CLI tests: ``llem`` run in-process through its console entry point (real
exit codes, stdout and stderr as a user sees them when piped), and results stores holding
real result directories built from llem_schema's examples.

Test modules name the fixtures' types themselves (``Llem``, ``MakeResult``); nothing here is
imported by them.
"""

import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from llem.cli import main
from llem_schema import ExperimentResult
from llem_schema.testing import EXAMPLE_START, example_config, example_raw_result, example_result
from llem_store import ResultStore


@dataclass(frozen=True)
class Outcome:
    """What ``llem ARGS`` did: its exit code and everything it printed."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def llem(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Outcome]]:
    """``llem(*args)``: the ``llem`` console script, in this process, output not a terminal."""
    monkeypatch.delenv("LLEM_DB", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    handlers, level = logging.root.handlers[:], logging.root.level

    def invoke(*args: str) -> Outcome:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["llem", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        code = exit_info.value.code
        captured = capsys.readouterr()
        return Outcome(code if isinstance(code, int) else int(code is not None), *captured)

    yield invoke
    logging.root.handlers[:] = handlers  # the CLI points logging at the captured stderr
    logging.root.setLevel(level)


def _make_result(
    experiment_id: str,
    *,
    model: str = "org/model-a",
    precision: str = "fp32",
    batch_size: int = 1,
    n_requests: int = 4,
    start_time: datetime = EXAMPLE_START,
    energy_j: float | None = 100.0,
    warnings: tuple[str, ...] = (),
) -> ExperimentResult:
    """A consistent result of ``experiment_id`` (llem_schema's example assembly)."""
    config = example_config(model=model, precision=precision, pytorch={"batch_size": batch_size})
    raw = example_raw_result(
        config=config, n_requests=n_requests, start_time=start_time, energy_j=energy_j
    ).model_copy(update={"experiment_id": experiment_id})
    return example_result([raw], config=config, measurement_warnings=warnings)


@pytest.fixture
def make_result() -> Callable[..., ExperimentResult]:
    """``make_result(experiment_id, model=, precision=, batch_size=, n_requests=,
    start_time=, energy_j=, warnings=)``: a consistent, unsaved result."""
    return _make_result


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """``tmp_path/results`` with four experiments saved and indexed in its ``llem.db``:
    ``exp_0`` (oldest) to ``exp_3``; exp_1 and exp_3 have a warning, exp_3 no energy."""
    root = tmp_path / "results"
    root.mkdir()
    specs = [
        ("exp_0", "org/model-a", "fp32", 4, 100.0, ()),
        (
            "exp_1",
            "org/model-b",
            "fp16",
            5,
            110.0,
            ("measurement window was 10.0 s, shorter than 60 s",),
        ),
        ("exp_2", "org/model-a", "fp16", 6, 80.0, ()),
        ("exp_3", "org/model-b", "fp32", 7, None, ("no energy measured",)),
    ]
    with ResultStore(root / "llem.db") as store:
        for day, (experiment_id, model, precision, n, energy_j, warnings) in enumerate(specs):
            result = _make_result(
                experiment_id,
                model=model,
                precision=precision,
                n_requests=n,
                start_time=EXAMPLE_START + timedelta(days=day),
                energy_j=energy_j,
                warnings=warnings,
            )
            store.ingest(result.save(root))
    return root

"""A whole ``llem run``: config -> launch -> per-process measurement -> staging -> late
aggregation -> saved result directory (steps 1 to 5 of DESIGN.md; the CLI reports)."""

import logging
from datetime import UTC, datetime
from pathlib import Path

from llem.errors import RunFailedError, RunInterruptedError
from llem.harness.backends import prepare_model
from llem.harness.launch import WorkerFailedError, run_workers
from llem.harness.progress import Reporter
from llem_energy import collect_environment
from llem_persistence import StagingRepository, finalize_experiment
from llem_schema import ExperimentConfig, LlemError, new_experiment_id

__all__ = ["RunFailedError", "RunInterruptedError", "run_experiment"]

logger = logging.getLogger(__name__)


def run_experiment(config: ExperimentConfig, *, reporter: Reporter) -> Path:
    """Measure ``config`` and return the saved result directory."""
    results_dir = Path(config.output_dir)
    experiment_id = new_experiment_id(config.model, config.backend, datetime.now(UTC))
    staging = StagingRepository(results_dir)
    staging.begin(config, experiment_id, config.num_processes, environment=collect_environment())
    reporter.note(
        f"experiment {experiment_id}: {config.n} prompts, {config.num_processes} process(es)"
    )
    try:
        prepare_model(config)
        run_workers(config, experiment_id, results_dir, reporter)
    except KeyboardInterrupt:
        raise RunInterruptedError(_kept(staging, experiment_id, "interrupted")) from None
    except WorkerFailedError as exc:
        raise RunFailedError(_kept(staging, experiment_id, str(exc))) from None
    except LlemError:
        _kept(staging, experiment_id, "")
        raise
    except Exception as exc:
        logger.debug("worker failure", exc_info=True)
        message = f"process 0 failed: {type(exc).__name__}: {exc}".splitlines()[0]
        raise RunFailedError(_kept(staging, experiment_id, message)) from exc
    return finalize_experiment(staging, experiment_id, results_dir, require_complete=True)


def _kept(staging: StagingRepository, experiment_id: str, reason: str) -> str:
    """What to tell the user about the staging; an experiment with nothing staged is removed."""
    if not staging.has_raw(experiment_id):
        staging.delete(experiment_id)
        return f"{reason}; no process had finished, nothing was kept"
    return (
        f"{reason}; the processes that finished are staged: recover them with "
        f"`llem aggregate {experiment_id} --output {staging.root.parent}`"
    )

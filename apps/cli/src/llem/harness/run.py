"""A whole ``llem run``: config -> launch -> per-process measurement -> staging -> late
aggregation -> saved result directory -> indexed in the store (steps 1 to 5 of DESIGN.md; the
CLI reports)."""

import logging
from datetime import UTC, datetime
from pathlib import Path

from llem.errors import RunFailedError, RunInterruptedError
from llem.harness.backends import prepare_model
from llem.harness.indexing import StoreIndex
from llem.harness.launch import WorkerFailedError, run_workers
from llem.harness.progress import Reporter
from llem_energy import collect_environment
from llem_persistence import DEFAULT_STORE_FILE, StagingRepository, finalize_experiment
from llem_schema import ExperimentConfig, LlemError, new_experiment_id, validate_experiment_id

__all__ = ["RunFailedError", "RunInterruptedError", "run_experiment"]

logger = logging.getLogger(__name__)


def run_experiment(
    config: ExperimentConfig,
    *,
    reporter: Reporter,
    store_path: Path | None = None,
    experiment_id: str | None = None,
    study_id: str | None = None,
) -> Path:
    """Measure ``config`` and return the saved result directory.

    The run is recorded in the results store at ``store_path`` (default
    ``<output_dir>/llem.db``): running when it starts, then failed or indexed. A store that
    cannot be written never fails the run; the reporter says how to re-index the result.

    A study passes the ``experiment_id`` it chose (and wrote into its manifest before the run
    started, so a resume recognises a result that was saved) and its ``study_id`` (registered
    in the store), so the run is recorded as part of the study. Without them the run gets a
    fresh id and belongs to no study.
    """
    results_dir = Path(config.output_dir)
    index = StoreIndex(store_path or results_dir / DEFAULT_STORE_FILE)
    started = datetime.now(UTC)
    if experiment_id is None:
        experiment_id = new_experiment_id(config.model, config.backend, started)
    else:
        validate_experiment_id(experiment_id)
    staging = StagingRepository(results_dir)
    staging.begin(config, experiment_id, config.num_processes, environment=collect_environment())
    index.mark_running(experiment_id, config, started, study_id=study_id)
    reporter.note(
        f"experiment {experiment_id}: {config.n} prompts, {config.num_processes} process(es)"
    )
    # held until the result is saved: `llem aggregate --all` leaves a live run alone
    with staging.running(experiment_id):
        try:
            prepare_model(config)
            run_workers(config, experiment_id, results_dir, reporter)
        except KeyboardInterrupt:
            index.mark_failed(experiment_id, "interrupted")
            raise RunInterruptedError(_kept(staging, experiment_id, "interrupted")) from None
        except WorkerFailedError as exc:
            index.mark_failed(experiment_id, str(exc))
            raise RunFailedError(_kept(staging, experiment_id, str(exc))) from None
        except LlemError as exc:
            index.mark_failed(experiment_id, str(exc))
            _kept(staging, experiment_id, "")
            raise
        except Exception as exc:
            logger.debug("worker failure", exc_info=True)
            message = f"process 0 failed: {type(exc).__name__}: {exc}".splitlines()[0]
            index.mark_failed(experiment_id, message)
            raise RunFailedError(_kept(staging, experiment_id, message)) from exc
        try:
            directory = finalize_experiment(
                staging, experiment_id, results_dir, require_complete=True
            )
        except BaseException as exc:
            index.mark_failed(experiment_id, f"not saved: {exc or type(exc).__name__}")
            raise
    warning = index.ingest(directory)
    if warning is not None:
        reporter.note(f"warning: {warning}")
    return directory


def _kept(staging: StagingRepository, experiment_id: str, reason: str) -> str:
    """What to tell the user about the staging; an experiment with nothing staged is removed."""
    if not staging.has_raw(experiment_id):
        staging.delete(experiment_id)
        return f"{reason}; no process had finished, nothing was kept"
    return (
        f"{reason}; the processes that finished are staged: recover them with "
        f"`llem aggregate {experiment_id} --output {staging.root.parent}`"
    )

"""From staged process results to a saved result directory (steps 4 and 5 of a run).

Used by the harness when every worker has finished, and by ``llem aggregate <id>`` to recover
what finished after a failed or interrupted run (marked ``complete = False``).
"""

import contextlib
import logging
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Final

from llem_persistence.aggregation import aggregate_results
from llem_persistence.errors import AggregationError, PersistenceError
from llem_persistence.locks import exclusive
from llem_persistence.staging import StagingRepository
from llem_persistence.timeseries import merge_timeseries, read_timeseries
from llem_schema import (
    RESULT_FILE,
    TIMESERIES_FILE,
    EnvironmentSnapshot,
    ExperimentResult,
    LlemError,
)
from llem_schema.io import MAX_UNIQUE_SUFFIX

__all__ = ["finalize_experiment"]

logger = logging.getLogger(__name__)

_MERGED: Final = "merged.timeseries.parquet"
_LOCK: Final = "finalize.lock"


def finalize_experiment(
    staging: StagingRepository,
    experiment_id: str,
    output_dir: str | PathLike[str],
    *,
    require_complete: bool = False,
    environment_snapshot: EnvironmentSnapshot | None = None,
) -> Path:
    """Aggregate the staged processes of ``experiment_id``, save the result, drop the staging.

    Returns the result directory. With ``require_complete`` a missing process is an
    :class:`AggregationError` and the staging stays. Safe to repeat and to race: one caller
    at a time holds the experiment's lock, and a result of this experiment already saved
    under ``output_dir`` (a previous call died before removing the staging) is returned
    instead of being saved twice.
    """
    directory = staging.experiment_dir(experiment_id)
    with _finalizing(directory):
        manifest = staging.load_manifest(experiment_id)
        raws = staging.load_all_raw(experiment_id)
        if not raws:
            raise AggregationError(
                f"experiment {experiment_id}: no process finished, so there is nothing to save"
            )
        completeness = staging.validate_process_completeness(
            experiment_id, manifest.expected_processes
        )
        if require_complete and not completeness.complete:
            raise AggregationError(
                f"experiment {experiment_id}: processes "
                f"{', '.join(map(str, completeness.missing))} did not finish; what did stays "
                "staged, to be saved marked incomplete"
            )
        start = min(raw.start_time for raw in raws)
        sources = []
        for raw in raws:
            if raw.timeseries is None:
                continue
            path = staging.staged_file(experiment_id, raw.timeseries)
            if path.is_file():
                sources.append((path, (raw.start_time - start).total_seconds()))
        merged = directory / _MERGED
        has_timeseries = merge_timeseries(sources, merged)
        result = aggregate_results(
            raws,
            effective_config=manifest.config.model_dump(mode="json"),
            expected_processes=manifest.expected_processes,
            environment_snapshot=environment_snapshot or manifest.environment,
            timeseries=TIMESERIES_FILE if has_timeseries else None,
            samples=read_timeseries(merged) if has_timeseries else None,
        )
        saved = _already_saved(Path(output_dir), result)
        if saved is None:
            saved = result.save(
                output_dir,
                timeseries_source=merged if has_timeseries else None,
                file_sources=staging.kept_files(experiment_id, manifest.expected_processes),
            )
            logger.info(
                "saved %s (%d of %d processes)", saved, len(raws), manifest.expected_processes
            )
        else:
            logger.warning("%s was already saved as %s; removing its staging", experiment_id, saved)
    staging.delete(experiment_id)
    return saved


@contextlib.contextmanager
def _finalizing(directory: Path) -> Iterator[None]:
    """Hold the staged experiment's finalize lock (one finalizer at a time)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive(directory / _LOCK))
        except FileNotFoundError:
            raise PersistenceError(f"{directory}: no staged experiment here") from None
        yield


def _already_saved(output_dir: Path, result: ExperimentResult) -> Path | None:
    """A directory under ``output_dir`` already holding this experiment's result."""
    base = result.directory_name()
    for suffix in range(MAX_UNIQUE_SUFFIX):
        candidate = output_dir / (base if suffix == 0 else f"{base}_{suffix}")
        if not candidate.is_dir():
            return None
        try:
            if (
                ExperimentResult.from_json(candidate / RESULT_FILE).experiment_id
                == result.experiment_id
            ):
                return candidate
        except LlemError:
            continue  # an interrupted save (no result.json yet) or another experiment
    return None

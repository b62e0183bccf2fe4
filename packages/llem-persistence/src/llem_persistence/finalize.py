"""From staged process results to a saved result directory (steps 4 and 5 of a run).

Used by the harness when every worker has finished, and by ``llem aggregate <id>`` to recover
what finished after a failed or interrupted run (marked ``complete = False``).
"""

import json
import logging
from os import PathLike
from pathlib import Path
from typing import Final

from llem_persistence.aggregation import aggregate_results
from llem_persistence.errors import AggregationError
from llem_persistence.staging import StagingRepository
from llem_persistence.timeseries import merge_timeseries
from llem_schema import TIMESERIES_FILE, EnvironmentSnapshot, ExperimentResult, LlemError
from llem_schema.io import atomic_write_bytes

__all__ = ["finalize_experiment"]

logger = logging.getLogger(__name__)

_MERGED: Final = "merged.timeseries.parquet"
_SAVED: Final = "saved.json"


def finalize_experiment(
    staging: StagingRepository,
    experiment_id: str,
    output_dir: str | PathLike[str],
    *,
    require_complete: bool = False,
    environment_snapshot: EnvironmentSnapshot | None = None,
) -> Path:
    """Aggregate the staged processes of ``experiment_id``, save the result, drop the staging.

    Returns the new result directory. With ``require_complete`` a missing process is an
    :class:`AggregationError` and the staging stays. Safe to repeat: if a previous call saved
    the result but died before removing the staging, the saved directory is returned.
    """
    directory = staging.experiment_dir(experiment_id)
    already = _already_saved(directory / _SAVED, experiment_id)
    if already is not None:
        staging.delete(experiment_id)
        return already
    manifest = staging.load_manifest(experiment_id)
    raws = staging.load_all_raw(experiment_id)
    if not raws:
        raise AggregationError(
            f"experiment {experiment_id}: no process finished, so there is nothing to save"
        )
    completeness = staging.validate_process_completeness(experiment_id, manifest.expected_processes)
    if require_complete and not completeness.complete:
        raise AggregationError(
            f"experiment {experiment_id}: processes "
            f"{', '.join(map(str, completeness.missing))} did not finish; recover what did "
            f"with: llem aggregate {experiment_id}"
        )
    start = min(raw.start_time for raw in raws)
    sources = [
        (directory / raw.timeseries, (raw.start_time - start).total_seconds())
        for raw in raws
        if raw.timeseries is not None and (directory / raw.timeseries).is_file()
    ]
    merged = directory / _MERGED
    has_timeseries = merge_timeseries(sources, merged)
    result = aggregate_results(
        raws,
        effective_config=manifest.config.model_dump(mode="json"),
        expected_processes=manifest.expected_processes,
        environment_snapshot=environment_snapshot or manifest.environment,
        timeseries=TIMESERIES_FILE if has_timeseries else None,
    )
    saved = result.save(output_dir, timeseries_source=merged if has_timeseries else None)
    atomic_write_bytes(directory / _SAVED, json.dumps({"result_dir": str(saved)}).encode())
    staging.delete(experiment_id)
    logger.info("saved %s (%d of %d processes)", saved, len(raws), manifest.expected_processes)
    return saved


def _already_saved(marker: Path, experiment_id: str) -> Path | None:
    if not marker.is_file():
        return None
    try:
        saved = Path(json.loads(marker.read_text())["result_dir"])
        if ExperimentResult.from_json(saved).experiment_id == experiment_id:
            return saved
    except (LlemError, OSError, ValueError, KeyError):
        logger.warning("%s: stale save marker ignored", marker)
    return None

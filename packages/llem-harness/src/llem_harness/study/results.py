"""The results a study's runs saved: finding a run's result directory by its experiment id, and
``study.json`` (the statistics across cycles) over the completed runs."""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from llem_harness.study.layout import RUNS_DIR, StudyLayout
from llem_schema import (
    RESULT_FILE,
    ExperimentResult,
    LlemError,
    StudyConfig,
    StudyManifest,
    StudyResult,
    summarize_study,
)

__all__ = ["find_result", "result_dirs_by_id", "saved_experiment_id", "write_study_result"]

logger = logging.getLogger(__name__)


def saved_experiment_id(directory: Path) -> str | None:
    """The experiment id in ``directory/result.json``; None if there is no readable one."""
    try:
        document = json.loads((directory / RESULT_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    value = document.get("experiment_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def result_dirs_by_id(layout: StudyLayout) -> dict[str, Path]:
    """Every result directory directly in the study directory, by its experiment id."""
    found: dict[str, Path] = {}
    if not layout.root.is_dir():
        return found
    for child in sorted(layout.root.iterdir()):
        if child.name.startswith(".") or child.name == RUNS_DIR or not child.is_dir():
            continue
        experiment_id = saved_experiment_id(child)
        if experiment_id is not None:
            found.setdefault(experiment_id, child)
    return found


def find_result(
    layout: StudyLayout, experiment_id: str, *, hint: Path | None = None
) -> Path | None:
    """The result directory of ``experiment_id`` in the study: ``hint`` (what the child said)
    when it holds that experiment, else whichever directory does; None if none does."""
    if (
        hint is not None
        and hint.parent.resolve() == layout.root.resolve()
        and saved_experiment_id(hint) == experiment_id
    ):
        return hint
    return result_dirs_by_id(layout).get(experiment_id)


def write_study_result(
    layout: StudyLayout, manifest: StudyManifest, study: StudyConfig
) -> StudyResult:
    """Summarise the completed runs into ``study.json`` (a result that cannot be loaded is left
    out, and the summary says so)."""
    results: dict[int, ExperimentResult] = {}
    for entry in manifest.entries:
        directory = entry.result_dir(layout.root)
        if entry.status != "completed" or directory is None:
            continue
        try:
            results[entry.run_index] = ExperimentResult.from_json(directory)
        except LlemError as exc:
            logger.warning("run %d: cannot load %s: %s", entry.run_index, directory, exc)
    summary = summarize_study(
        manifest,
        results,
        cv_warning_threshold=study.cv_warning_threshold,
        # the last run's end, not now: a resume with nothing left to run changes nothing
        finished_at=max(
            (e.finished_at for e in manifest.entries if e.finished_at is not None),
            default=max(datetime.now(UTC), manifest.created_at),
        ),
    )
    summary.save(layout.root)
    return summary

"""Picking a study up again: refuse a changed study file (unless forced), settle the runs a
killed study left ``running``, and carry completed runs over to a changed study (``force``).
"""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from llem_harness.errors import StudyChangedError
from llem_harness.indexing import StoreIndex
from llem_harness.study.layout import StudyLayout, wait_for_log_lock
from llem_harness.study.results import find_result
from llem_harness.study.runner import INTERRUPTED
from llem_schema import StudyManifest, StudyPlan
from llem_schema.result import RESULT_FILE

__all__ = ["carry_over", "changed_file_error", "file_sha256", "settle_stale_runs"]


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def changed_file_error(
    manifest: StudyManifest, *, study_file: Path, study_dir: Path, given: bool
) -> StudyChangedError:
    """The refusal of a study file that changed since the study started (without ``force``).

    ``given``: the caller named the file, rather than the copy in the study directory being
    read (which then no longer matches the manifest, and should be restored).
    """
    where = "" if given else " (it no longer matches manifest.json); restore it"
    return StudyChangedError(
        f"{study_file} changed since study {manifest.study_id} started{where}",
        study_dir=study_dir,
        force_does="use the changed file",
        original=given,
    )


def settle_stale_runs(
    layout: StudyLayout, manifest: StudyManifest, index: StoreIndex
) -> tuple[StudyManifest, list[str]]:
    """Decide each run a killed study left ``running``: completed if a result directory in the
    study holds its experiment id (indexed into the study in the store), else pending again
    (its store row failed, ``interrupted``). Waits for any process of such a run that is
    still alive. Returns the manifest (saved if it changed) and what to tell the user."""
    notes: list[str] = []
    for entry in manifest.entries:
        if entry.status != "running":
            continue
        wait_for_log_lock(layout, entry.run_index)
        now = datetime.now(UTC)
        directory = None
        if entry.experiment_id is not None:
            directory = find_result(layout, entry.experiment_id)
        if directory is not None and entry.experiment_id is not None:
            warning = index.ingest_into_study(directory, entry.experiment_id, manifest.study_id)
            if warning is not None:
                notes.append(f"warning: {warning}")
            try:  # when it saved its result, not now: the study was stopped in between
                saved = datetime.fromtimestamp((directory / RESULT_FILE).stat().st_mtime, UTC)
            except OSError:
                saved = now
            manifest = manifest.with_entry(
                entry.run_index,
                status="completed",
                finished_at=max(min(saved, now), entry.started_at or now),
                error=None,
                result_path=layout.relative(directory),
            )
            notes.append(f"run {entry.run_index} had saved its result before the study stopped")
        else:
            if entry.experiment_id is not None:
                index.mark_failed(entry.experiment_id, INTERRUPTED)
            manifest = manifest.with_entry(
                entry.run_index, status="pending", finished_at=None, error=INTERRUPTED
            )
            notes.append(f"run {entry.run_index} was cut off when the study stopped; it runs again")
        manifest.save(layout.root)
    return manifest, notes


def carry_over(
    old: StudyManifest, plan: StudyPlan, *, study_name: str, study_file_sha256: str
) -> tuple[StudyManifest, int, int]:
    """A manifest of ``plan`` (the changed study) in the same study, with every completed run
    of ``old`` whose (config hash, cycle) is still planned kept completed; every other run is
    pending. Returns it with how many runs were kept and how many completed runs are no longer
    in the study (their result directories stay where they are)."""
    completed = {
        (entry.config_hash, entry.cycle): entry
        for entry in old.entries
        if entry.status == "completed"
    }
    manifest = StudyManifest.new(
        plan,
        study_id=old.study_id,
        study_name=study_name,
        study_file_sha256=study_file_sha256,
        created_at=old.created_at,
    )
    kept = 0
    for entry in manifest.entries:
        if entry.status == "skipped":
            continue
        previous = completed.pop((entry.config_hash, entry.cycle), None)
        if previous is None:
            continue
        manifest = manifest.with_entry(
            entry.run_index,
            status="completed",
            started_at=previous.started_at,
            finished_at=previous.finished_at,
            experiment_id=previous.experiment_id,
            result_path=previous.result_path,
        )
        kept += 1
    return manifest, kept, len(completed)

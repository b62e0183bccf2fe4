"""What a study's runners record when a run ends, the same whether it ran on this machine or
as a Slurm job: the manifest entry (saved atomically), the store row, and what the user sees."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from llem_harness.indexing import StoreIndex
from llem_harness.study.display import RunLabel, StudyDisplay
from llem_harness.study.layout import StudyLayout
from llem_schema import StudyManifest

__all__ = ["RunRecords"]


class RunRecords:
    """Mixed into a runner that has these attributes; only its main thread calls them."""

    layout: StudyLayout
    manifest: StudyManifest
    index: StoreIndex
    display: StudyDisplay

    _batching: bool = False
    _unsaved: bool = False

    def _save(self, manifest: StudyManifest) -> None:
        self.manifest = manifest
        if self._batching:
            self._unsaved = True
            return
        manifest.save(self.layout.root)

    @contextmanager
    def _saved_once(self) -> Iterator[None]:
        """The manifest changes made inside are written together at the end: one write for
        the runs a poll of Slurm concluded, not one each (the manifest grows with the study).
        The store rows are written as each run concludes, as before."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            if self._unsaved:
                self._unsaved = False
                self._save(self.manifest)

    def _completed(
        self, label: RunLabel, experiment_id: str, directory: Path, outcome: str
    ) -> None:
        """The run saved its result in ``directory``: index it into the study, record it."""
        warning = self.index.ingest_into_study(directory, experiment_id, self.manifest.study_id)
        if warning is not None:
            self.display.note(f"warning: {warning}")
        self._save(
            self.manifest.with_entry(
                label.run_index,
                status="completed",
                finished_at=datetime.now(UTC),
                error=None,
                result_path=self.layout.relative(directory),
            )
        )
        self.display.finished(label, outcome)

    def _failed(self, label: RunLabel, experiment_id: str, reason: str) -> None:
        """The run failed for ``reason``: its store row and its entry say so."""
        self.index.mark_failed(experiment_id, reason)
        self._save(
            self.manifest.with_entry(
                label.run_index, status="failed", finished_at=datetime.now(UTC), error=reason
            )
        )
        log = self.layout.relative(self.layout.log_file(label.run_index))
        self.display.finished(label, f"failed: {reason} (log: {log})")

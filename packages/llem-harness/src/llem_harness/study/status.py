"""Where a study's runs are, from its manifest and, for runs submitted to Slurm, from Slurm:
``llem study status DIR``."""

from dataclasses import dataclass
from pathlib import Path

from llem_harness.errors import UsageError
from llem_harness.study.layout import StudyLayout, is_being_run
from llem_harness.study.slurm import JobState, Slurm, SlurmError
from llem_schema import ManifestEntry, StudyManifest

__all__ = ["RunStatus", "StudyStatus", "study_status"]


@dataclass(frozen=True)
class RunStatus:
    """One run: its manifest entry, and where it is: ``completed``, ``failed``, ``skipped``,
    ``pending`` (to run), ``queued`` or ``running`` (in Slurm, or on this machine), or
    ``ended`` (its job ended; a resume collects it)."""

    entry: ManifestEntry
    status: str
    job: JobState | None = None


@dataclass(frozen=True)
class StudyStatus:
    manifest: StudyManifest
    runs: list[RunStatus]
    followed: bool
    """Whether an llem process follows the study now (holds its lock)."""
    note: str | None = None
    """Why Slurm was not asked, where it was not."""

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for run in self.runs:
            found[run.status] = found.get(run.status, 0) + 1
        return found


def study_status(study_dir: Path, *, slurm: Slurm | None = None) -> StudyStatus:
    """The status of every run of the study in ``study_dir`` (see :class:`RunStatus`)."""
    layout = StudyLayout(study_dir)
    if not layout.manifest_file.is_file():
        raise UsageError(f"{study_dir} is not a study directory (it has no manifest.json)")
    manifest = StudyManifest.load(study_dir)
    submitted = [
        e.slurm_job_id for e in manifest.entries if e.status == "running" and e.slurm_job_id
    ]
    states: dict[str, JobState] = {}
    note = None
    if submitted:
        try:
            states = (slurm or Slurm()).states(submitted)
        except (UsageError, SlurmError) as exc:
            note = f"Slurm not asked ({exc}): its runs are shown as the manifest has them"
            submitted = []
    runs = []
    for entry in manifest.entries:
        status: str = entry.status
        job = states.get(entry.slurm_job_id) if entry.slurm_job_id else None
        if entry.status == "running" and entry.slurm_job_id and entry.slurm_job_id in submitted:
            if job is None or not job.active:
                status = "ended"
            elif job.queued:
                status = "queued"
        runs.append(RunStatus(entry, status, job))
    return StudyStatus(manifest, runs, is_being_run(layout), note)

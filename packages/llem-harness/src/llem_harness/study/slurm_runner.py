"""A study whose runs are Slurm jobs: submit what remains as one job array, follow each run in
Slurm, and record how it ended.

One writer: only this controller (the ``llem study`` process) writes the manifest and the
results store. A job writes its run's result directory, its staging and its log (the study
directory lies on a filesystem the nodes share); its child is told no store, and the
controller indexes the result once the job has ended.

The manifest records a run ``running`` with its experiment id before it is submitted, and its
job (``slurm_job_id``) once sbatch has answered. A resume follows those jobs instead of
submitting them again; a job that ended while nobody watched is concluded from its result
directory, or failed with Slurm's reason, and a failed run (failed, cancelled, preempted, out
of time, its node lost) is submitted again. A run recorded running without a job id (the
controller died while sbatch ran, or sbatch's answer was lost) is concluded from its result
directory if it saved one, else found in Slurm by the array's name (the study id), else run
again. Each submission's specs lie in a directory of their own, so a job of an earlier
attempt never runs a later attempt's spec.

Ctrl-C stops following; the jobs go on in Slurm (a resume collects them) unless
``cancel_on_interrupt`` says to cancel them, which puts their runs back to pending.
"""

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from llem_harness.errors import UsageError
from llem_harness.indexing import StoreIndex
from llem_harness.study.display import RunLabel, StudyDisplay
from llem_harness.study.launcher import failure_reason, reported_result
from llem_harness.study.layout import StudyLayout
from llem_harness.study.records import RunRecords
from llem_harness.study.results import find_result
from llem_harness.study.runner import INTERRUPTED, stops_counted
from llem_harness.study.slurm import (
    JobState,
    Slurm,
    SlurmError,
    array_spec,
    job_script,
    sbatch_options,
)
from llem_harness.study.spec import ChildSpec
from llem_schema import StudyConfig, StudyManifest, StudyPlan, new_experiment_id
from llem_schema.study_config import SlurmExecutorConfig

__all__ = ["INTERRUPTED", "RESULT_GRACE_S", "SlurmRunner", "job_name"]

RESULT_GRACE_S: Final = 30.0
"""How long a job Slurm says COMPLETED may take to show its result directory here."""
_USUAL_WAITS: Final = frozenset(
    {None, "None", "Priority", "Resources", "JobArrayTaskLimit", "BeginTime", "Dependency"}
)
"""Reasons a queued job gives while it waits its turn: not worth a word. Any other (a held
job, a node or partition that cannot run it, an account limit) is said once, as it comes."""
HOPELESS_WAITS: Final = frozenset(
    {
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "AccountNotAllowed",
        "QOSNotAllowed",
    }
)
"""Reasons a queued job gives that do not clear by waiting: its run is failed with the
reason (and the job cancelled), not left to wait forever."""
_MISSES_BEFORE_LOST: Final = 2
_QUERY_ATTEMPTS: Final = 5
"""Failed squeue calls in a row after which following the jobs gives up (a resume goes on)."""

_LOST: Final = (
    "Slurm no longer knows its job {job} (cancelled before it started, or ended long ago) and "
    "it saved no result"
)


def job_name(study_id: str) -> str:
    """The name of a study's job arrays: how a resume finds jobs the manifest missed."""
    return f"llem-{study_id}"


@dataclass
class _Job:
    run_index: int
    experiment_id: str
    job_id: str
    label: RunLabel
    started: bool = False
    missed: int = 0
    """Polls in a row in which squeue did not list the job."""
    waits_for: str | None = None
    """The reason Slurm last gave for keeping the job queued, when it was said."""
    saved_by: float | None = None
    """When a job that ended well must at the latest show its result (a shared filesystem
    may show another node's files late), monotonic s; None until it ended."""


@dataclass
class SlurmRunner(RunRecords):
    """Runs the remaining entries of ``manifest`` as Slurm jobs (see the module docstring)."""

    layout: StudyLayout
    study: StudyConfig
    plan: StudyPlan
    manifest: StudyManifest
    index: StoreIndex
    display: StudyDisplay
    executor: SlurmExecutorConfig
    slurm: Slurm = field(default_factory=Slurm)
    verbose: bool = False
    detach: bool = False
    """Submit, then return without following the jobs."""
    cancel_on_interrupt: Callable[[int], bool] = lambda jobs: False
    """Asked, with how many jobs are in Slurm, whether Ctrl-C cancels them."""
    poll_s: float = 2.0
    _interrupts: int = field(default=0, init=False)

    @property
    def interrupted(self) -> bool:
        return self._interrupts > 0

    def interrupt(self) -> None:
        self._interrupts += 1

    def run(self) -> StudyManifest:
        """Submit and follow every remaining run; return the final manifest (completed,
        failed when no run completed, interrupted when runs remain: stopped or detached).
        Whatever stops it, the manifest is left saying what is where."""
        self.slurm.check()
        jobs: list[_Job] = []
        try:
            jobs = self._follow_submitted()
            following = {job.run_index for job in jobs}
            waiting = [
                e.run_index for e in self.manifest.remaining() if e.run_index not in following
            ]
            counts = self.manifest.counts()
            self.display.begin(len(self.plan.runs), counts["completed"])
            try:
                if waiting:
                    jobs += self._submit(waiting)
                if not self.detach:  # detached, the jobs go on and a resume follows them
                    with stops_counted(self.interrupt):
                        self._follow(jobs)
            finally:
                self.display.end()
            if self.interrupted:
                self._stop(jobs)
        finally:
            self._save(self.manifest.with_status(self._status()))
        return self.manifest

    def _status(self) -> Literal["interrupted", "completed", "failed"]:
        counts = self.manifest.counts()
        if counts["pending"] or counts["running"]:
            return "interrupted"
        return "completed" if counts["completed"] or not counts["failed"] else "failed"

    # -- submitting -----------------------------------------------------------------------

    def _submit(self, run_indices: Sequence[int]) -> list[_Job]:
        """Write each run's spec (in this submission's own directory), record it running with
        its experiment id (and in the store), submit them as one array, and record each
        task's job id. A submission Slurm refuses puts the runs back to pending; one whose
        outcome is unknown (sbatch not answering, interrupted) leaves them running without a
        job id, for a resume to find."""
        limit = self.slurm.max_array_size()
        if limit is not None and max(run_indices) >= limit:
            raise UsageError(
                f"run {max(run_indices)} is beyond this cluster's MaxArraySize ({limit}): Slurm "
                f"numbers a study's runs by array task, so split the study into studies of at "
                f"most {limit} runs"
            )
        submitted_at = datetime.now(UTC)
        specs = (
            self.layout.runs_dir / f"submitted-{submitted_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        )
        chosen: dict[int, str] = {}
        for run_index in run_indices:
            entry = self.manifest.entry(run_index)
            point = self.plan.point(entry.point_index)
            experiment_id = new_experiment_id(
                point.config.model, point.config.backend, submitted_at
            )
            while experiment_id in chosen.values():  # one second, many runs: ids must differ
                experiment_id = new_experiment_id(
                    point.config.model, point.config.backend, submitted_at
                )
            chosen[run_index] = experiment_id
            ChildSpec(
                config=point.config.model_copy(
                    update={"output_dir": str(self.layout.root.absolute())}
                ),
                experiment_id=experiment_id,
                study_id=self.manifest.study_id,
                run_index=run_index,
                store_path=None,  # one writer: the controller indexes the result
                index_path=None if self.index.path is None else str(self.index.path.absolute()),
                parent_pid=None,
                verbose=self.verbose,
            ).save(specs / f"run_{run_index:04d}.json")
            self.index.mark_running(
                experiment_id, point.config, submitted_at, study_id=self.manifest.study_id
            )
            self.manifest = self.manifest.with_entry(
                run_index,
                status="running",
                started_at=submitted_at,
                finished_at=None,
                error=None,
                experiment_id=experiment_id,
                result_path=None,
                slurm_job_id=None,
            )
        self._save(self.manifest)
        options = sbatch_options(
            self.executor,
            job_name=job_name(self.manifest.study_id),
            workdir=self.layout.root.absolute(),
            log_pattern=self.layout.runs_dir.absolute() / "run_%4a.log",
            timeout_s=self.study.timeout_s,
        )
        try:
            array_id = self.slurm.submit(
                job_script(specs.absolute()),
                options,
                array=array_spec(run_indices, self.executor.max_parallel),
            )
        except UsageError:  # refused: nothing was submitted, the runs are still to run
            for run_index in run_indices:
                self.index.mark_failed(chosen[run_index], "Slurm refused its submission")
                self.manifest = self.manifest.with_entry(
                    run_index, status="pending", started_at=None, experiment_id=None
                )
            self._save(self.manifest)
            raise
        jobs = []
        for run_index in run_indices:
            job_id = f"{array_id}_{run_index}"
            self.manifest = self.manifest.with_entry(run_index, slurm_job_id=job_id)
            jobs.append(_Job(run_index, chosen[run_index], job_id, self._label(run_index)))
            with self.layout.log_file(run_index).open("a", encoding="utf-8") as log:
                log.write(
                    f"--- {submitted_at.isoformat(timespec='seconds')} run {run_index} of study "
                    f"{self.manifest.study_id}: experiment {chosen[run_index]}, Slurm job "
                    f"{job_id} ---\n"
                )
        self._save(self.manifest)
        self.display.note(
            f"submitted {len(jobs)} run(s) to Slurm as job array {array_id}"
            + (
                f" (at most {self.executor.max_parallel} at a time)"
                if self.executor.max_parallel
                else ""
            )
        )
        return jobs

    def _follow_submitted(self) -> list[_Job]:
        """The runs an earlier controller left running: concluded where their result is
        saved or their job has ended, followed where it has not. A run without a job id is
        looked for in Slurm by the array's name (the latest attempt); not there, it runs
        again."""
        running = [e for e in self.manifest.entries if e.status == "running"]
        if not running:
            return []
        known = [e.slurm_job_id for e in running if e.slurm_job_id]
        states = self.slurm.states(known)
        if set(known) - states.keys():  # not listed: ask once more before taking them as gone
            time.sleep(min(self.poll_s, 1.0))
            states.update(self.slurm.states(sorted(set(known) - states.keys())))
        named: dict[str, JobState] = {}
        if any(e.slurm_job_id is None for e in running):
            named = self.slurm.states([], name=job_name(self.manifest.study_id))
        jobs = []
        for entry in running:
            assert entry.experiment_id is not None
            job_id = entry.slurm_job_id
            if job_id is None:
                tasks = sorted(
                    (j for j in named if j.endswith(f"_{entry.run_index}")),
                    key=lambda j: int(j.split("_")[0]),
                )
                if tasks:
                    job_id = tasks[-1]  # the latest attempt
                    states[job_id] = named[job_id]
                    self.manifest = self.manifest.with_entry(entry.run_index, slurm_job_id=job_id)
            job = _Job(
                entry.run_index, entry.experiment_id, job_id or "", self._label(entry.run_index)
            )
            state = states.get(job_id) if job_id else None
            saved = find_result(self.layout, entry.experiment_id) is not None
            if job_id is None and not saved:  # never reached Slurm, or gone without a trace
                self.index.mark_failed(entry.experiment_id, INTERRUPTED)
                self.manifest = self.manifest.with_entry(
                    entry.run_index, status="pending", error=INTERRUPTED
                )
            elif not saved and state is not None and (state.active or state.state == "COMPLETED"):
                jobs.append(job)  # running, queued, or about to show its result: follow it
            else:
                self._conclude(job, state)
        self._save(self.manifest)
        if jobs:
            self.display.note(f"following {len(jobs)} run(s) already in Slurm")
        return jobs

    # -- following ------------------------------------------------------------------------

    def _follow(self, jobs: list[_Job]) -> None:
        failures = 0
        while jobs and not self.interrupted:
            try:
                states = self.slurm.states([job.job_id for job in jobs])
                failures = 0
            except SlurmError as exc:  # slurmctld busy or restarting: ask again
                failures += 1
                if failures >= _QUERY_ATTEMPTS:
                    raise
                self.display.note(f"warning: {exc}; asking Slurm again")
                self._sleep()
                continue
            with self._saved_once():  # one manifest write per poll
                self._poll(jobs, states)
            if jobs:
                self._sleep()

    def _poll(self, jobs: list[_Job], states: Mapping[str, JobState]) -> None:
        """Note what Slurm says of each job; conclude those that ended (and drop them
        from ``jobs``)."""
        for job in list(jobs):
            state = states.get(job.job_id)
            if state is None and job.missed < _MISSES_BEFORE_LOST:
                job.missed += 1  # a task between states, or squeue's lapse: ask again
                continue
            job.missed = 0
            if state is not None and state.queued and state.reason in HOPELESS_WAITS:
                jobs.remove(job)
                self.slurm.cancel([job.job_id])
                self._conclude(job, state, cannot_start=True)
                continue
            if state is not None and state.active:
                if not state.queued and not job.started:
                    job.started = True
                    self.display.started(job.label)
                elif state.queued and state.reason not in _USUAL_WAITS | {job.waits_for}:
                    job.waits_for = state.reason
                    self.display.note(
                        f"{job.label}: Slurm keeps job {job.job_id} waiting: "
                        f"{state.describe()} (scontrol show job {job.job_id} says more)"
                    )
                continue
            if self._result_due(job, state):
                continue
            jobs.remove(job)
            self._conclude(job, state)

    def _result_due(self, job: _Job, state: JobState | None) -> bool:
        """Whether to wait for the result of a job that ended well but whose result is not
        there yet (another node's files reach a shared filesystem's other clients late)."""
        if state is None or state.state != "COMPLETED":
            return False
        if find_result(self.layout, job.experiment_id) is not None:
            return False
        now = time.monotonic()
        if job.saved_by is None:
            job.saved_by = now + RESULT_GRACE_S
        return now < job.saved_by

    def _sleep(self) -> None:
        deadline = time.monotonic() + self.poll_s
        while time.monotonic() < deadline and not self.interrupted:
            time.sleep(min(0.1, self.poll_s))

    def _conclude(self, job: _Job, state: JobState | None, *, cannot_start: bool = False) -> None:
        """Record how ``job`` ended: completed if it saved its result (however Slurm says it
        ended), else failed with Slurm's state and the log's last error."""
        log = self.layout.log_file(job.run_index)
        try:
            output = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            output = ""
        directory = find_result(self.layout, job.experiment_id, hint=reported_result(output))
        if directory is not None:
            self._completed(
                job.label, job.experiment_id, directory, f"completed (Slurm job {job.job_id})"
            )
            return
        if state is None:
            reason = _LOST.format(job=job.job_id)
        elif cannot_start:
            reason = f"Slurm cannot start job {job.job_id}: {state.describe()}; it was cancelled"
        else:
            reason = f"Slurm job {job.job_id} ended {state.describe()}"
            _, _, printed = output.rsplit("\n--- ", 1)[-1].partition("\n")  # this attempt's
            if printed.strip():
                reason += f": {failure_reason(printed, 1)}"
        self._failed(job.label, job.experiment_id, reason)

    def _stop(self, jobs: list[_Job]) -> None:
        """After Ctrl-C: cancel the jobs still in Slurm if asked to (a run that saved its
        result meanwhile is completed; the others are pending again), else leave them to a
        resume."""
        if not jobs:
            return
        arrays = " ".join(sorted({job.job_id.split("_")[0] for job in jobs}))
        if self.cancel_on_interrupt(len(jobs)):
            self.slurm.cancel([job.job_id for job in jobs])
            for job in jobs:
                if find_result(self.layout, job.experiment_id) is not None:
                    self._conclude(job, None)
                    continue
                self.index.mark_failed(job.experiment_id, INTERRUPTED)
                self.manifest = self.manifest.with_entry(
                    job.run_index, status="pending", finished_at=None, error=INTERRUPTED
                )
            self._save(self.manifest)
            self.display.note(f"interrupted: cancelled {len(jobs)} Slurm job(s)")
            return
        self.display.note(
            f"interrupted: {len(jobs)} run(s) go on in Slurm; `llem study --resume "
            f"{self.layout.root}` collects them (`scancel {arrays}` stops them)"
        )

    # -- bookkeeping ----------------------------------------------------------------------

    def _label(self, run_index: int) -> RunLabel:
        entry = self.manifest.entry(run_index)
        assert entry.cycle is not None
        return RunLabel(
            run_index=run_index,
            total=len(self.plan.runs),
            point_index=entry.point_index,
            overrides=entry.overrides,
            cycle=entry.cycle,
        )

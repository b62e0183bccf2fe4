"""Slurm, driven through its own commands: ``sbatch`` submits a study's runs as one job array,
``squeue`` (then ``sacct``, where the cluster keeps accounting) says where each run is, and
``scancel`` cancels.

The commands rather than a Python library: submitit, the well-kept one, pickles a Python
function into each job and tracks jobs through ``sacct`` alone (clusters without accounting
cannot follow them); a run of a study is already a command
(``python -m llem_harness.study.child SPEC``), and ``squeue`` answers on every cluster. The
commands' output formats used here are stable across Slurm releases (``--parsable``,
``--noheader --format``).

One array job per submission: its task ids are the runs' indices in the manifest, so task
``1234_7`` is run 7, its spec ``runs/run_0007.json`` and its log ``runs/run_0007.log``. Every
task asks for the same resources (those of the study's executor), and ``max_parallel`` is the
array's ``%N`` limit, which Slurm enforces.
"""

import math
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from llem_harness.errors import UsageError
from llem_schema import LlemError
from llem_schema.study_config import SlurmExecutorConfig

__all__ = [
    "ACTIVE_STATES",
    "JobState",
    "Slurm",
    "SlurmError",
    "array_spec",
    "job_script",
    "sbatch_options",
]

ACTIVE_STATES: Final = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)
"""Job states in which a job has not ended: a run in one is left alone, never resubmitted."""

QUEUED_STATES: Final = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD"})
"""Job states of a job that has not started (yet, or again)."""

_COMMAND_TIMEOUT_S: Final = 60.0
_TIME_MARGIN_S: Final = 600.0
"""How much longer a run's job may take than the study's timeout_s (start-up, saving)."""


class SlurmError(LlemError):
    """A Slurm command that failed where llem needed its answer (not a refused submission,
    which is the user's to fix: a :class:`UsageError`)."""


@dataclass(frozen=True)
class JobState:
    """Where one job (or array task) is, as Slurm says."""

    job_id: str
    state: str
    """Slurm's state, upper case, without a ``by <uid>`` suffix (CANCELLED by 0 -> CANCELLED)."""
    reason: str | None = None
    """Why a job waits or ended as it did (squeue's %r, sacct's Reason), if Slurm says."""
    exit_code: str | None = None
    """``code:signal`` of an ended job, where sacct gives it."""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def queued(self) -> bool:
        return self.state in QUEUED_STATES

    def describe(self) -> str:
        """``TIMEOUT (exit 0:15)``, ``PENDING (Resources)``: the state and why."""
        details = [d for d in (self.reason, self.exit_code and f"exit {self.exit_code}") if d]
        details = [d for d in details if d not in ("None", "none")]
        return f"{self.state} ({', '.join(details)})" if details else self.state


def sbatch_options(
    executor: SlurmExecutorConfig,
    *,
    job_name: str,
    workdir: Path,
    log_pattern: Path,
    timeout_s: float,
) -> list[str]:
    """The sbatch options of every run's job: resources, limits, names and where its output
    goes (appended to the run's log)."""
    minutes = math.ceil((timeout_s + _TIME_MARGIN_S) / 60.0)
    options = [
        f"--job-name={job_name}",
        f"--chdir={workdir}",
        f"--output={log_pattern}",
        "--open-mode=append",
        "--ntasks=1",
        f"--cpus-per-task={executor.cpus_per_run}",
        f"--time={executor.time_limit or minutes}",
    ]
    if executor.gpus_per_run:
        options.append(f"--gpus={executor.gpus_per_run}")
    if executor.partition:
        options.append(f"--partition={executor.partition}")
    if executor.account:
        options.append(f"--account={executor.account}")
    if executor.mem:
        options.append(f"--mem={executor.mem}")
    return [*options, *executor.extra_sbatch]


def array_spec(run_indices: Sequence[int], max_parallel: int | None) -> str:
    """``--array``'s value: the runs' indices as ranges (``0-3,7``), with ``%N``."""
    ordered = sorted(set(run_indices))
    ranges: list[str] = []
    start = previous = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(ranges) + (f"%{max_parallel}" if max_parallel else "")


def job_script(runs_dir: Path, python: str = sys.executable) -> str:
    """The batch script of every run's job: the run whose index is the task's id, exactly as
    a study runs it on this machine (its spec names its experiment, config and output)."""
    spec = shlex.quote(str(runs_dir)) + '/run_$(printf %04d "$SLURM_ARRAY_TASK_ID").json'
    return (
        "#!/bin/bash\n"
        "# one run of an llem study (written by llem study --executor slurm)\n"
        "export PYTHONUNBUFFERED=1  # a killed run loses none of its output\n"
        "# number GPUs as NVML does, so the GPUs metered are the ones used\n"
        'export CUDA_DEVICE_ORDER="${CUDA_DEVICE_ORDER:-PCI_BUS_ID}"\n'
        f"exec {shlex.quote(python)} -m llem_harness.study.child {spec}\n"
    )


@dataclass(frozen=True)
class Slurm:
    """The Slurm commands of this host (``environment``: what they run with)."""

    environment: Mapping[str, str] | None = None

    def check(self) -> None:
        """A :class:`UsageError` (exit 2) unless ``sbatch`` and ``squeue`` are here."""
        missing = [
            c for c in ("sbatch", "squeue", "scancel") if shutil.which(c, path=self._path()) is None
        ]
        if missing:
            raise UsageError(
                f"no Slurm on this host: {', '.join(missing)} not found on PATH; run the study "
                "where Slurm's commands are (a login node), or on this machine (--executor local)"
            )

    def submit(self, script: str, options: Sequence[str], *, array: str) -> str:
        """Submit ``script`` as a job array of tasks ``array``; return the array's job id.
        A refused submission (a bad partition or account, a limit) is a :class:`UsageError`
        carrying Slurm's own message; nothing is submitted then."""
        completed = self._run(["sbatch", "--parsable", f"--array={array}", *options], stdin=script)
        if completed.returncode != 0:
            message = _last_line(completed.stderr) or f"sbatch exited with {completed.returncode}"
            raise UsageError(f"Slurm refused the study's jobs: {message}")
        job_id = completed.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {completed.stdout.strip()!r}, not a job id")
        return job_id

    def states(self, job_ids: Collection[str], *, name: str | None = None) -> dict[str, JobState]:
        """Where each of ``job_ids`` is (array tasks as ``1234_7``), and every task of jobs
        called ``name``: squeue's answer, then sacct's for jobs squeue no longer lists (where
        the cluster keeps accounting). A job neither knows is left out."""
        found: dict[str, JobState] = {}
        # each task by its own id: squeue lists every task asked for by id, where asked for
        # by the array it can leave one out (Slurm 22.05, a strided array's last task)
        selectors = [f"--jobs={','.join(sorted(job_ids))}"] if job_ids else []
        if name is not None:
            selectors.append(f"--name={name}")
        for selector in selectors:
            completed = self._run(
                ["squeue", "--noheader", "--array", "--states=all", selector, "--format=%i|%T|%r"]
            )
            if completed.returncode != 0 and "Invalid job id" not in completed.stderr:
                raise SlurmError(f"squeue failed: {_last_line(completed.stderr)}")
            for line in completed.stdout.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 3:
                    found[parts[0]] = JobState(parts[0], _state(parts[1]), parts[2] or None)
        missing = sorted(set(job_ids) - found.keys())
        if missing and shutil.which("sacct", path=self._path()) is not None:
            found.update(self._accounted(missing))
        return found

    def _accounted(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        completed = self._run(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--jobs=" + ",".join(job_ids),
                "--format=JobID,State,ExitCode,Reason",
            ]
        )
        if completed.returncode != 0:  # no accounting on this cluster: squeue is all there is
            return {}
        found = {}
        for line in completed.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 3 and parts[0] in job_ids:
                reason = parts[3] if len(parts) > 3 and parts[3] else None
                found[parts[0]] = JobState(parts[0], _state(parts[1]), reason, parts[2] or None)
        return found

    def max_array_size(self) -> int | None:
        """The cluster's MaxArraySize (task ids must lie below it); None if unknown."""
        completed = self._run(["scontrol", "show", "config"])
        for line in completed.stdout.splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "MaxArraySize" and value.strip().isdigit():
                return int(value.strip())
        return None

    def cancel(self, job_ids: Collection[str]) -> None:
        """Cancel ``job_ids`` (those already ended are no error)."""
        if job_ids:
            self._run(["scancel", *sorted(job_ids)])

    def _path(self) -> str | None:
        return (self.environment or os.environ).get("PATH")

    def _run(
        self, command: list[str], *, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=_COMMAND_TIMEOUT_S,
                env=None if self.environment is None else dict(self.environment),
                check=False,
            )
        except FileNotFoundError:
            raise UsageError(f"no Slurm on this host: {command[0]} not found on PATH") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(
                f"{command[0]} did not answer within {_COMMAND_TIMEOUT_S:g} s (is slurmctld up?)"
            ) from None


def _state(text: str) -> str:
    return text.strip().split(" ")[0].upper()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("sbatch: error: ") if lines else ""

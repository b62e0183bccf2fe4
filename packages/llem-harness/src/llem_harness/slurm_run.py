"""``llem run --launcher slurm``: one experiment whose processes ``srun`` starts, across nodes.

:func:`run_with_srun` checks the config here (a mistake is found before anything is asked of
Slurm), chooses the experiment id, writes the run's spec into the results directory's staging
(the nodes must share the results directory) and runs::

    srun --nodes 2 --ntasks-per-node 4 --gpus-per-node 4 python -m llem_harness.slurm_run SPEC

Outside an allocation ``srun`` asks Slurm for one and waits for it; inside one (``salloc``,
an ``sbatch`` script) it starts the tasks there. Each task runs the experiment as
``srun llem run`` would (:mod:`llem_harness.multinode`): task 0 saves and indexes the result
and tells this process, on its standard output, its progress (``progress: {…}``) and how it
ended (``result: DIR``, ``error: …``); the tasks' logs and Slurm's own messages pass through on
standard error.

Ctrl-C here (or SIGTERM) becomes SIGTERM to every task of the step (``scancel --signal=TERM
JOB.STEP``; ``srun`` itself would end the step at once): each stages what it finished and
task 0 saves the run, marked interrupted. A second Ctrl-C ends the step at once.
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

from pydantic import Field

from llem_harness.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    RunFailedError,
    RunInterruptedError,
    Terminated,
    UsageError,
    describe_exception,
    exit_code_for,
)
from llem_harness.progress import ProgressCallback, ProgressEvent
from llem_harness.run import (
    Measurement,
    StoreChoice,
    check_experiment,
    check_output_dir,
    resolve_config,
    terminate_as_interrupt,
)
from llem_harness.study.spec import SpecFile
from llem_persistence import StagingRepository
from llem_schema import (
    ExperimentConfig,
    ExperimentId,
    ExperimentResult,
    new_experiment_id,
)

__all__ = ["SrunLaunch", "StepSpec", "main", "run_with_srun", "srun_command"]

logger = logging.getLogger(__name__)

_STEP: Final = "step: "
_PROGRESS: Final = "progress: "
_RESULT: Final = "result: "
_ERROR: Final = "error: "
_SRUN_ERROR: Final = "srun: error: "
_SCANCEL_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class SrunLaunch:
    """Where ``srun`` starts the run's processes: ``nodes`` nodes, each with
    ``gpus_per_node`` GPUs and one process per GPU (None: no GPUs asked for, and the
    config's ``num_processes`` spread evenly over the nodes)."""

    nodes: int = 1
    gpus_per_node: int | None = None
    partition: str | None = None
    account: str | None = None
    time_limit: str | None = None

    def processes(self, config: ExperimentConfig) -> int:
        """The run's process count, checked against the config's ``num_processes``."""
        if self.nodes < 1:
            raise UsageError(f"--nodes must be at least 1, not {self.nodes}")
        if self.gpus_per_node is not None:
            if self.gpus_per_node < 1:
                raise UsageError(f"--gpus-per-node must be at least 1, not {self.gpus_per_node}")
            total = self.nodes * self.gpus_per_node
            if config.num_processes not in (1, total):
                raise UsageError(
                    f"num_processes is {config.num_processes}, but {self.nodes} node(s) with "
                    f"{self.gpus_per_node} GPU(s) each run {total} processes, one per GPU: "
                    f"give --num-processes {total}, or leave num_processes out"
                )
            return total
        total = config.num_processes
        if total % self.nodes:
            raise UsageError(
                f"num_processes is {total}, which {self.nodes} nodes cannot share evenly: "
                "give --gpus-per-node, or a num_processes that is a multiple of --nodes"
            )
        return total


class StepSpec(SpecFile):
    """What each task of the step runs (``.staging/srun-<experiment id>.json``)."""

    config: ExperimentConfig
    experiment_id: ExperimentId
    store_path: str | None = Field(description="The results store; None: none.")
    verbose: bool = False


def srun_command(
    launch: SrunLaunch, processes: int, spec_file: Path, *, python: str = sys.executable
) -> list[str]:
    """The ``srun`` command line that starts the run's tasks."""
    command = [
        "srun",
        f"--nodes={launch.nodes}",
        f"--ntasks-per-node={processes // launch.nodes}",
        # llem stops the other tasks itself when one fails, after they have said why
        "--kill-on-bad-exit=0",
        "--job-name=llem-run",
    ]
    if launch.gpus_per_node is not None:
        command.append(f"--gpus-per-node={launch.gpus_per_node}")
    for option, value in (
        ("--partition", launch.partition),
        ("--account", launch.account),
        ("--time", launch.time_limit),
    ):
        if value is not None:
            command.append(f"{option}={value}")
    return [*command, python, "-m", "llem_harness.slurm_run", str(spec_file)]


def run_with_srun(
    config: ExperimentConfig,
    launch: SrunLaunch,
    *,
    progress: ProgressCallback | None = None,
    store: StoreChoice = None,
    verbose: bool = False,
) -> Measurement:
    """Run ``config`` as one experiment of ``srun``'s tasks; its saved result.

    Raises as :func:`~llem_harness.run_experiment` does: :class:`UsageError` (exit 2) for no
    Slurm here, a launch that does not fit the config, or a step Slurm refuses (its message);
    :class:`RunFailedError` and :class:`RunInterruptedError` for a run that started.
    """
    srun = shutil.which("srun")
    if srun is None:
        raise UsageError(
            "no Slurm on this host: srun is not on PATH (--launcher slurm starts the run's "
            "processes with srun)"
        )
    config = resolve_config(config)
    processes = launch.processes(config)
    config = config.model_copy(update={"num_processes": processes})
    check_experiment(config, store=store)
    results_dir = Path(config.output_dir).absolute()
    config = config.model_copy(update={"output_dir": str(results_dir)})
    check_output_dir(results_dir)
    experiment_id = new_experiment_id(config.model, config.backend, datetime.now(UTC))
    spec_file = StagingRepository(results_dir).root / f"srun-{experiment_id}.json"
    store_path = None
    if store is not False:
        store_path = str(Path(store).absolute() if store is not None else results_dir / "llem.db")
    StepSpec(
        config=config, experiment_id=experiment_id, store_path=store_path, verbose=verbose
    ).save(spec_file)
    command = [srun, *srun_command(launch, processes, spec_file)[1:]]
    try:
        outcome = _Step(command, progress or (lambda event: None)).run()
    finally:
        with contextlib.suppress(FileNotFoundError):
            spec_file.unlink()
        with contextlib.suppress(OSError):  # another run's staging is there: it stays
            spec_file.parent.rmdir()
    return outcome.measurement(experiment_id, results_dir)


@dataclass
class _Outcome:
    returncode: int
    result: Path | None
    error: str | None
    """Task 0's ``error:`` line: how the run ended."""
    logged_error: str | None
    """Task 0's last error log line: why, where it said nothing more (it had to exit)."""
    started: bool
    refusal: str | None
    stopped_by: signal.Signals | None

    def measurement(self, experiment_id: str, results_dir: Path) -> Measurement:
        interrupted = self.returncode in (EXIT_INTERRUPTED, EXIT_TERMINATED)
        if self.result is not None and self.error is None:
            if self.returncode != 0:  # another task ended badly after the result was saved
                logger.warning(
                    "srun exited with code %d after the result was saved", self.returncode
                )
            return Measurement(ExperimentResult.from_json(self.result), self.result)
        if not self.started and not interrupted:
            raise UsageError(
                f"Slurm did not start the run: {self.refusal or f'srun exited with code {self.returncode}'}"
            )
        reason = (
            self.error
            or self.logged_error
            or self.refusal
            or f"srun exited with code {self.returncode}"
        )
        if self.returncode == EXIT_USAGE and self.error is not None:
            raise UsageError(self.error)
        staging = StagingRepository(results_dir)
        staged = staging.has_raw(experiment_id) if self.result is None else False
        if interrupted:
            error = RunInterruptedError(
                "interrupted",
                experiment_id=experiment_id,
                results_dir=results_dir,
                staged=staged,
                saved=self.result,
                complete=self.result is not None
                and ExperimentResult.from_json(self.result).aggregation.complete,
            )
            if (self.stopped_by or self.returncode) in (signal.SIGTERM, EXIT_TERMINATED):
                error.signal_number = signal.SIGTERM
            raise error
        raise RunFailedError(
            reason,
            experiment_id=experiment_id,
            results_dir=results_dir,
            staged=staged,
        )


class _Step:
    """``srun`` running, its standard output read here, its standard error passed on."""

    def __init__(self, command: Sequence[str], progress: ProgressCallback) -> None:
        self.command = list(command)
        self.progress = progress
        self.result: Path | None = None
        self.error: str | None = None
        self.started = False
        self.refusal: str | None = None
        self.logged_error: str | None = None
        self.step: str | None = None
        self.stopped_by: signal.Signals | None = None
        """The signal that stopped this process (and so the run), if one did."""

    def run(self) -> _Outcome:
        process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C is this process's to pass on, once
        )
        assert process.stdout is not None
        assert process.stderr is not None
        errors = threading.Thread(target=self._pass_on, args=(process.stderr,), daemon=True)
        errors.start()
        interrupts = 0
        with terminate_as_interrupt():
            while True:
                try:
                    for line in process.stdout:
                        self._read(line.rstrip("\n"))
                    process.wait()
                    break
                except KeyboardInterrupt as stop:
                    interrupts += 1
                    if self.stopped_by is None:
                        self.stopped_by = (
                            signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
                        )
                    if interrupts == 1 and self.step is not None:
                        self._signal_tasks(self.step)
                    else:
                        process.send_signal(signal.SIGTERM)  # srun ends the step
        errors.join(5.0)
        return _Outcome(
            process.returncode,
            self.result,
            self.error,
            self.logged_error,
            self.started,
            self.refusal,
            self.stopped_by,
        )

    def _signal_tasks(self, step: str) -> None:
        """SIGTERM to every task of ``step``, through Slurm (the step goes on to its end)."""
        scancel = shutil.which("scancel") or "scancel"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [scancel, "--signal=TERM", step],
                capture_output=True,
                timeout=_SCANCEL_TIMEOUT_S,
                check=False,
            )

    def _read(self, line: str) -> None:
        if line.startswith(_STEP):
            self.step = line[len(_STEP) :].strip()
        elif line.startswith(_PROGRESS):
            self.started = True
            with contextlib.suppress(ValueError, TypeError):
                self.progress(ProgressEvent(**json.loads(line[len(_PROGRESS) :])))
        elif line.startswith(_RESULT):
            self.result = Path(line[len(_RESULT) :].strip())
        elif line.startswith(_ERROR):
            self.started = True
            self.error = line[len(_ERROR) :].strip()
        elif line.strip():
            print(line, file=sys.stderr, flush=True)

    def _pass_on(self, stream: IO[str]) -> None:
        for line in stream:
            if line.startswith(_SRUN_ERROR) and self.refusal is None:
                self.refusal = line[len(_SRUN_ERROR) :].strip()
            elif line.startswith(_ERROR) and not line.startswith(f"{_ERROR}[process "):
                self.logged_error = line[len(_ERROR) :].strip()  # task 0's log
            print(line, end="", file=sys.stderr, flush=True)


# -- in each task ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """A task of the step: ``python -m llem_harness.slurm_run SPEC``; the exit code."""
    from llem_harness.logs import configure_process_logging
    from llem_harness.multinode import slurm_task
    from llem_harness.run import run_experiment
    from llem_schema import LlemError

    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        _say(f"{_ERROR}usage: python -m llem_harness.slurm_run SPEC.json")
        return 2
    task = slurm_task()
    rank = 0 if task is None else task.rank
    try:
        spec = StepSpec.load(Path(args[0]))
    except (OSError, ValueError) as exc:
        _tell(rank, f"{_ERROR}cannot read the run's spec {args[0]}: {exc}".splitlines()[0])
        return 2
    configure_process_logging(verbose=spec.verbose, prefix=f"[process {rank}] " if rank else "")
    if "SLURM_JOB_ID" in os.environ:
        step = f"{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '0')}"
        _tell(rank, f"{_STEP}{step}")
    try:
        measured = run_experiment(
            spec.config,
            progress=_report if rank == 0 else None,
            store=spec.store_path if spec.store_path is not None else False,
            experiment_id=spec.experiment_id,
            verbose=spec.verbose,
        )
    except LlemError as error:
        if isinstance(error, RunInterruptedError) and rank > 0:
            return exit_code_for(error)  # task 0 says what was saved
        if isinstance(error, RunFailedError):  # what was kept, the launching process says
            if error.saved is not None:
                _tell(rank, f"{_RESULT}{error.saved}")
            _tell(rank, f"{_ERROR}{error.reason}")
        else:
            _tell(rank, f"{_ERROR}{error}")
        return exit_code_for(error)
    except Exception as exc:
        _tell(rank, f"{_ERROR}{describe_exception(exc)}")
        return 1
    _tell(rank, f"{_RESULT}{measured.directory}")
    return 0


def _report(event: ProgressEvent) -> None:
    _say(_PROGRESS + json.dumps(asdict(event)))


def _tell(rank: int, line: str) -> None:
    """Task 0 tells the launching process (standard output); the others, the user (their
    standard error, passed on)."""
    if rank == 0:
        _say(line)
    elif line.startswith(_ERROR):
        print(f"[process {rank}] {line}", file=sys.stderr, flush=True)


def _say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())

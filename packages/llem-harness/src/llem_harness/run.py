"""A whole measurement: config -> launch -> per-process measurement -> staging -> late
aggregation -> saved result directory -> indexed in the store (steps 1 to 5 of a run).

:func:`measure` is what ``llem run`` calls, and what a notebook calls::

    import llem
    result = llem.measure(llem.ExperimentConfig(n=20, max_new_tokens=32))
"""

import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from types import FrameType
from typing import Literal, TypeVar

from llem_energy import DEFAULT_PACKAGES, collect_environment, simulated_gpu_count
from llem_harness.backends import (
    SettingsModels,
    create_backend,
    installed_backends,
    settings_model_of,
)
from llem_harness.errors import (
    EXIT_FAILURE,
    OutputDirectoryError,
    RunFailedError,
    RunInterruptedError,
    Terminated,
    UsageError,
    WorkerFailedError,
    describe_exception,
)
from llem_harness.indexing import NotIndexed, StoreIndex
from llem_harness.launch import INTERRUPT_GRACE_S, run_workers
from llem_harness.multinode import (
    Coordinator,
    Follower,
    SlurmTask,
    announce_failure,
    local_count,
    slurm_task,
    torchrun_environment,
)
from llem_harness.progress import ProgressCallback, Stages
from llem_harness.prompts import check_prompts
from llem_harness.worker import measure_process
from llem_persistence import StagingRepository, finalize_experiment
from llem_schema import (
    EnvironmentSnapshot,
    ExperimentConfig,
    ExperimentResult,
    InferenceBackend,
    WorkerContext,
    new_experiment_id,
    parse_config,
    resolve_backend_settings,
    validate_experiment_id,
)
from llem_schema.io import file_in_the_way
from llem_store import DEFAULT_STORE_FILE

__all__ = ["Measurement", "check_experiment", "measure", "resolve_config", "run_experiment"]

logger = logging.getLogger(__name__)

StoreChoice = str | PathLike[str] | Literal[False] | None
Launcher = Literal["auto", "local"]
Failure = TypeVar("Failure", bound=RunFailedError)


@dataclass(frozen=True)
class Measurement:
    """A saved measurement: the result, where it is, and what the store said."""

    result: ExperimentResult
    directory: Path
    not_indexed: NotIndexed | None = None
    """Why the result is not in the store, when indexing it failed (the run did not)."""


def measure(
    config: ExperimentConfig,
    *,
    backend: InferenceBackend | None = None,
    progress: ProgressCallback | None = None,
    store: StoreChoice = None,
) -> ExperimentResult:
    """Measure ``config`` and return its result, saved under ``config.output_dir``.

    ``backend`` is an already-constructed backend object to measure with (registered
    nowhere); by default the installed backend ``config.backend`` names is used. A config
    that leaves ``backend`` unset takes the object's name. ``progress`` receives a
    :class:`~llem_harness.ProgressEvent` for each step (``print`` will do). ``store`` is the
    results store that indexes the run: None, the default ``<output_dir>/llem.db``; a path;
    or False, no store.

    The result is what ``ExperimentResult.from_json`` reads from its directory
    (``result.process_results``, ``result.timeseries`` name what is there). A config or a
    backend that cannot run is refused before anything starts (a :class:`ConfigError`, say);
    a run that fails once started raises :class:`~llem_harness.RunFailedError` (Ctrl-C or
    SIGTERM: :class:`RunInterruptedError`) after staging what finished, its cause chained.
    From a script, ``num_processes > 1`` needs the ``if __name__ == "__main__":`` guard of
    every program that starts processes with ``multiprocessing``.
    """
    return run_experiment(config, backend=backend, progress=progress, store=store).result


def resolve_config(
    config: ExperimentConfig, backend: InferenceBackend | None = None
) -> ExperimentConfig:
    """``config`` resolved against the installed backends (its backend's settings validated
    and filled in), or against ``backend``, an object registered nowhere."""
    if backend is None:
        return resolve_backend_settings(config, SettingsModels())
    if "backend" not in config.model_fields_set:
        config = parse_config(config.model_dump() | {"backend": backend.name})
    if config.backend != backend.name:
        raise UsageError(
            f"the config selects backend {config.backend!r} but the backend object given is "
            f"{backend.name!r}"
        )
    if config.num_processes != 1:
        raise UsageError(
            f"a backend object runs in this process only, but num_processes is "
            f"{config.num_processes}: register its class under the entry-point group "
            "llem.backends to run it in several processes"
        )
    try:
        model = settings_model_of(backend)
    except TypeError as exc:
        raise UsageError(f"the backend object {backend.name!r} cannot be used: {exc}") from None
    return resolve_backend_settings(config, SettingsModels({backend.name: model}))


def check_experiment(
    config: ExperimentConfig,
    *,
    backend: InferenceBackend | None = None,
    store: StoreChoice = None,
) -> InferenceBackend:
    """Everything about ``config`` that can be checked without measuring, in seconds, and
    the backend it prepared: the prompts (a prompt file that is missing, empty or malformed),
    the results store (a file that is not one), and what the backend's ``prepare`` checks
    (a model path that does not exist, a server that does not answer). A mistake raises
    before any model loads and before the run is recorded anywhere.

    ``llem config validate`` and ``llem run --dry-run`` run it too, so each finds what the
    run would.
    """
    config = resolve_config(config, backend)
    _check_inputs(config, store)
    prepared = backend or create_backend(config.backend)
    prepared.prepare(config)
    return prepared


def _check_inputs(config: ExperimentConfig, store: StoreChoice) -> None:
    """What :func:`check_experiment` checks before the backend's ``prepare``: in a moment,
    reading files only."""
    simulated_gpu_count()  # a bad LLEM_SIMULATED_GPUS stops the run before anything starts
    check_prompts(config)
    results_dir = Path(config.output_dir)
    if file_in_the_way(results_dir) is not None:  # said as check_output_dir says it
        raise OutputDirectoryError(
            f"cannot write results to {results_dir} (a file is in the way of the directory)",
            directory=results_dir,
        )
    _store_index(store, results_dir).check()


def run_experiment(
    config: ExperimentConfig,
    *,
    backend: InferenceBackend | None = None,
    progress: ProgressCallback | None = None,
    store: StoreChoice = None,
    experiment_id: str | None = None,
    study_id: str | None = None,
    verbose: bool = False,
    save_interrupted: bool = True,
    launcher: Launcher = "auto",
) -> Measurement:
    """:func:`measure`, telling also where the result went and whether it was indexed.

    A study passes the ``experiment_id`` it chose (and wrote into its manifest before the run
    started, so a resume recognises a result that was saved) and its ``study_id`` (registered
    in the store), so the run is recorded as part of the study. ``verbose`` gives worker
    processes debug logs. ``save_interrupted``: an interrupted run saves what finished,
    marked incomplete (a study's runs leave it staged instead: the study runs them again).

    ``launcher``: ``auto`` runs each task of a Slurm job step of several tasks (``srun -n 4
    llem run …``) as one process of a single run (:mod:`llem_harness.multinode`): task 0
    saves and indexes the result, and every task returns it; elsewhere, as ``local``, the
    config's ``num_processes`` are started on this host.
    """
    task = slurm_task() if launcher == "auto" else None
    if task is not None and task.rank > 0:
        return _follow(resolve_config(_for_step(config, task), backend), task)
    try:
        if task is not None:
            config = _for_step(config, task)
        config = resolve_config(config, backend)
        stages = Stages(progress)
        results_dir = Path(config.output_dir)
        index = _store_index(store, results_dir)
        started = datetime.now(UTC)
        if experiment_id is None:
            experiment_id = new_experiment_id(config.model, config.backend, started)
        else:
            validate_experiment_id(experiment_id)
        prepared = check_experiment(config, backend=backend, store=store)  # nothing made yet
        check_output_dir(results_dir)  # before a model loads: not a minute later
        staging = StagingRepository(results_dir)
        staging.begin(
            config, experiment_id, config.num_processes, environment=_environment(config.backend)
        )
    except BaseException as exc:
        if task is not None:  # the other tasks wait for task 0: tell them why it stopped
            announce_failure(Path(config.output_dir), task, describe_exception(exc))
        raise
    stages.note(
        f"experiment {experiment_id}: {config.n} prompts, {config.num_processes} process(es), "
        f"backend {config.backend}"
    )

    def stuck(reason: str) -> None:  # task 0's backend hangs in a run that failed elsewhere
        index.mark_failed(experiment_id, reason)
        logger.error("%s", reason)
        logger.warning("process 0's backend did not let go of the run: exiting")
        os._exit(EXIT_FAILURE)

    # held until the result is saved: a recovery of staged runs leaves a live run alone, and
    # a row recorded as running whose lock is free was abandoned (so it is recorded after)
    with (
        staging.running(experiment_id),
        terminate_as_interrupt(),
        nullcontext(None)
        if task is None
        else Coordinator(task, results_dir, experiment_id, progress, stuck=stuck) as coordinator,
    ):
        index.mark_running(experiment_id, config, started, study_id=study_id)
        try:
            if coordinator is None:
                run_workers(
                    config,
                    experiment_id,
                    results_dir,
                    progress,
                    backend=prepared if config.num_processes == 1 else None,
                    verbose=verbose,
                )
            else:
                _lead(coordinator, config, experiment_id, prepared, stages)
        except KeyboardInterrupt as stop:
            saved = None
            if save_interrupted and staging.has_raw(experiment_id):
                saved = _save_interrupted(staging, experiment_id, results_dir, index)
            if saved is None:
                index.mark_failed(experiment_id, "interrupted")
                interrupted = _failure(RunInterruptedError, "interrupted", staging, experiment_id)
            else:
                interrupted = RunInterruptedError(
                    "interrupted",
                    experiment_id=experiment_id,
                    results_dir=results_dir,
                    staged=False,
                    saved=saved,
                    complete=ExperimentResult.from_json(saved).aggregation.complete,
                )
            if isinstance(stop, Terminated):
                interrupted.signal_number = signal.SIGTERM
            raise interrupted from None
        except Exception as exc:
            logger.debug("the run failed", exc_info=True)
            if isinstance(exc, WorkerFailedError):
                reason = str(exc)
            elif config.num_processes == 1:
                reason = f"process 0 failed: {describe_exception(exc)}"
            else:
                reason = f"the launcher failed: {describe_exception(exc)}"
            index.mark_failed(experiment_id, reason)
            raise _failure(RunFailedError, reason, staging, experiment_id) from exc
        try:
            directory = finalize_experiment(
                staging, experiment_id, results_dir, require_complete=True
            )
        except BaseException as exc:
            reason = f"not saved: {str(exc) or type(exc).__name__}"
            index.mark_failed(experiment_id, reason)
            if coordinator is not None:
                coordinator.fail(reason)
            raise
        if coordinator is not None:
            coordinator.finish(directory)
    not_indexed = index.ingest(directory)
    if not_indexed is not None:
        stages.note(f"warning: {not_indexed}")
    return Measurement(ExperimentResult.from_json(directory), directory, not_indexed)


def _for_step(config: ExperimentConfig, task: SlurmTask) -> ExperimentConfig:
    """``config`` as run by the tasks of a Slurm job step: one process per task
    (``num_processes`` is the task count, or 1, its default)."""
    if config.num_processes == task.count:
        return config
    if config.num_processes != 1:
        raise UsageError(
            f"num_processes is {config.num_processes}, but srun started {task.count} tasks, "
            f"one process each: leave num_processes out, or start {config.num_processes} "
            "tasks"
        )
    return config.model_copy(update={"num_processes": task.count})


def _lead(
    coordinator: Coordinator,
    config: ExperimentConfig,
    experiment_id: str,
    backend: InferenceBackend,
    stages: Stages,
) -> None:
    """Task 0 of a Slurm job step: let the other tasks join, measure this task's share with
    them, and wait until every share is staged."""
    task = coordinator.task
    results_dir = Path(config.output_dir)
    try:
        hosts = coordinator.join()
        stages.note(
            f"{task.count} processes on {len(set(hosts.values()))} node(s): "
            + ", ".join(sorted(set(hosts.values())))
        )
        os.environ.update(torchrun_environment(task, hosts, coordinator.master_port))
        with coordinator.measuring():
            measure_process(
                config,
                experiment_id,
                backend=backend,
                results_dir=results_dir,
                context=_context(task, hosts, results_dir, experiment_id),
                stages=Stages(lambda event: coordinator.progress(0, event)),
                barrier=coordinator.wait,
            )
        coordinator.wait()  # every share is staged
    except KeyboardInterrupt:
        coordinator.interrupt(INTERRUPT_GRACE_S)  # raises the failure, where one came first
        raise
    except WorkerFailedError as failed:
        coordinator.fail(str(failed))  # another task's: already told to every task
        raise
    except Exception as exc:
        reason = f"process 0 failed: {describe_exception(exc)}"
        coordinator.fail(reason)
        raise WorkerFailedError(reason, process_index=0) from exc


def _follow(config: ExperimentConfig, task: SlurmTask) -> Measurement:
    """A Slurm task other than 0: join task 0, measure this task's share, and return the
    result task 0 saved. Nothing is written but this task's staged share."""
    results_dir = Path(config.output_dir)
    follower = Follower(task, results_dir)
    experiment_id = follower.experiment_id
    staging = StagingRepository(results_dir)
    os.environ.update(torchrun_environment(task, follower.hosts, follower.master_port))
    with terminate_as_interrupt():
        try:
            try:
                with follower.measuring():
                    measure_process(
                        config,
                        experiment_id,
                        backend=create_backend(config.backend),
                        results_dir=results_dir,
                        context=_context(task, follower.hosts, results_dir, experiment_id),
                        stages=Stages(follower.progress),
                        barrier=follower.barrier,
                    )
                follower.wait()  # every share is staged
                saved = follower.wait()["saved"]  # task 0 saved the result
            except KeyboardInterrupt:
                follower.end(interrupted=True)
                raise
            except WorkerFailedError:
                follower.end()
                raise
            except Exception as exc:
                follower.fail(describe_exception(exc))
                follower.end()
                raise
        except KeyboardInterrupt as stop:
            interrupted = RunInterruptedError(
                f"process {task.rank} was interrupted; process 0 saves what finished",
                experiment_id=experiment_id,
                results_dir=results_dir,
                staged=staging.raw_path(experiment_id, task.rank).is_file(),
            )
            if isinstance(stop, Terminated):
                interrupted.signal_number = signal.SIGTERM
            raise interrupted from None
        except Exception as exc:
            logger.debug("process %d failed", task.rank, exc_info=True)
            reason = (
                str(exc)
                if isinstance(exc, WorkerFailedError)
                else f"process {task.rank} failed: {describe_exception(exc)}"
            )
            raise RunFailedError(
                reason,
                experiment_id=experiment_id,
                results_dir=results_dir,
                staged=staging.has_raw(experiment_id),
            ) from exc
    follower.end()
    directory = Path(saved)
    return Measurement(ExperimentResult.from_json(directory), directory)


def _context(
    task: SlurmTask, hosts: dict[int, str], results_dir: Path, experiment_id: str
) -> WorkerContext:
    return WorkerContext(
        process_index=task.rank,
        num_processes=task.count,
        local_index=task.local_rank,
        local_count=local_count(task, hosts),
        files_dir=str(StagingRepository(results_dir).files_dir(experiment_id, task.rank)),
    )


def _environment(backend: str) -> EnvironmentSnapshot:
    """The machine, with the versions of llem's packages, the frameworks and the package
    that provides ``backend``."""
    info = installed_backends().get(backend)
    extra = () if info is None or info.distribution is None else (info.distribution,)
    return collect_environment(packages=tuple(dict.fromkeys((*DEFAULT_PACKAGES, *extra))))


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler stopping the job) stops the run as Ctrl-C does: the
    workers are stopped and the run is recorded as interrupted. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _store_index(store: StoreChoice, results_dir: Path) -> StoreIndex:
    if store is False:
        return StoreIndex(None)
    return StoreIndex(Path(store) if store is not None else results_dir / DEFAULT_STORE_FILE)


def _save_interrupted(
    staging: StagingRepository, experiment_id: str, results_dir: Path, index: StoreIndex
) -> Path | None:
    """Save what an interrupted run finished, marked incomplete, and index it; None (and it
    stays staged) when that fails too."""
    try:
        directory = finalize_experiment(staging, experiment_id, results_dir)
    except Exception as exc:  # whatever went wrong, the interruption is what to report
        logger.warning("cannot save what the interrupted run finished: %s", describe_exception(exc))
        return None
    not_indexed = index.ingest(directory)
    if not_indexed is not None:
        logger.warning("%s", not_indexed)
    return directory


def _failure(
    kind: type[Failure], reason: str, staging: StagingRepository, experiment_id: str
) -> Failure:
    """The error of a run that failed: its staging kept where a process finished, removed
    otherwise; files its backend left (a server's log that says why) are moved beside the
    results first, into ``<experiment id>.failed``."""
    staged = staging.has_raw(experiment_id)
    files = None
    if not staged:
        processes = staging.load_manifest(experiment_id).expected_processes
        kept = staging.kept_files(experiment_id, processes)
        if kept:
            files = staging.root.parent / f"{experiment_id}.failed"
            files.mkdir(parents=True, exist_ok=True)
            for name, path in kept.items():
                shutil.move(path, files / name)
        staging.delete(experiment_id)
    return kind(
        reason,
        experiment_id=experiment_id,
        results_dir=staging.root.parent,
        staged=staged,
        files=files,
    )


def check_output_dir(results_dir: Path) -> None:
    """Create ``results_dir`` if needed and make sure files can be written in it (a probe
    file is created and removed); :class:`OutputDirectoryError` in one line otherwise."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=results_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a file is in the way of the directory"
        raise OutputDirectoryError(
            f"cannot write results to {results_dir} ({reason})", directory=results_dir
        ) from None

"""A whole measurement: config -> launch -> per-process measurement -> staging -> late
aggregation -> saved result directory -> indexed in the store (steps 1 to 5 of a run).

:func:`measure` is what ``llem run`` calls, and what a notebook calls::

    import llem
    result = llem.measure(llem.ExperimentConfig(n=20, max_new_tokens=32))
"""

import logging
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    OutputDirectoryError,
    RunFailedError,
    RunInterruptedError,
    Terminated,
    UsageError,
    WorkerFailedError,
    describe_exception,
)
from llem_harness.indexing import NotIndexed, StoreIndex
from llem_harness.launch import run_workers
from llem_harness.progress import ProgressCallback, Stages
from llem_harness.prompts import check_prompts
from llem_persistence import StagingRepository, finalize_experiment
from llem_schema import (
    EnvironmentSnapshot,
    ExperimentConfig,
    ExperimentResult,
    InferenceBackend,
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
) -> Measurement:
    """:func:`measure`, telling also where the result went and whether it was indexed.

    A study passes the ``experiment_id`` it chose (and wrote into its manifest before the run
    started, so a resume recognises a result that was saved) and its ``study_id`` (registered
    in the store), so the run is recorded as part of the study. ``verbose`` gives worker
    processes debug logs. ``save_interrupted``: an interrupted run saves what finished,
    marked incomplete (a study's runs leave it staged instead: the study runs them again).
    """
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
    check_output_dir(results_dir)  # before a model loads: not a minute later, with a traceback
    staging = StagingRepository(results_dir)
    staging.begin(
        config, experiment_id, config.num_processes, environment=_environment(config.backend)
    )
    stages.note(
        f"experiment {experiment_id}: {config.n} prompts, {config.num_processes} process(es), "
        f"backend {config.backend}"
    )
    # held until the result is saved: a recovery of staged runs leaves a live run alone, and
    # a row recorded as running whose lock is free was abandoned (so it is recorded after)
    with staging.running(experiment_id), _terminate_as_interrupt():
        index.mark_running(experiment_id, config, started, study_id=study_id)
        try:
            run_workers(
                config,
                experiment_id,
                results_dir,
                progress,
                backend=prepared if config.num_processes == 1 else None,
                verbose=verbose,
            )
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
            index.mark_failed(experiment_id, f"not saved: {str(exc) or type(exc).__name__}")
            raise
    not_indexed = index.ingest(directory)
    if not_indexed is not None:
        stages.note(f"warning: {not_indexed}")
    return Measurement(ExperimentResult.from_json(directory), directory, not_indexed)


def _environment(backend: str) -> EnvironmentSnapshot:
    """The machine, with the versions of llem's packages, the frameworks and the package
    that provides ``backend``."""
    info = installed_backends().get(backend)
    extra = () if info is None or info.distribution is None else (info.distribution,)
    return collect_environment(packages=tuple(dict.fromkeys((*DEFAULT_PACKAGES, *extra))))


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
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

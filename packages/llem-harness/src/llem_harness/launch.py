"""Step 2 of a run: one process in this one, or N worker processes on this host.

The workers are started by llem itself (``multiprocessing`` with the ``spawn`` method), not by
a framework's launcher, so that any backend can run in several processes and the harness
imports no framework. Each worker gets the environment ``torchrun`` would give it (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so a
backend whose engine needs collectives can initialise them (``torch.distributed`` with
``init_method="env://"``); llem's own synchronisation is a CPU-side barrier that keeps no
accelerator busy.

The launching process watches the workers: their progress reaches the caller as one stream
(:class:`~llem_harness.progress.MergedProgress`); the first worker that fails, or dies,
stops the others, and its message (not a traceback) says why. Workers ignore Ctrl-C: the
launching process receives it (or SIGTERM) and asks each worker to stop with SIGTERM, which a
worker takes as its own Ctrl-C: it stops sending, lets what is in flight finish, stages what
finished marked interrupted and exits 130. The launcher waits for that (up to
``INTERRUPT_GRACE_S``; a second Ctrl-C stops them at once), so the run is saved as an
interrupted one with every process's finished requests, as a single-process run is. A
worker whose launching process is gone (killed) stops itself the same way.
"""

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType
from typing import Any, Final

from llem_harness.backends import create_backend
from llem_harness.errors import EXIT_INTERRUPTED, WorkerFailedError, describe_exception
from llem_harness.logs import configure_process_logging
from llem_harness.progress import MergedProgress, ProgressCallback, ProgressEvent, Stages
from llem_harness.study.launcher import describe_exit
from llem_harness.worker import measure_process
from llem_persistence import StagingRepository
from llem_schema import ExperimentConfig, InferenceBackend, WorkerContext

__all__ = ["run_workers"]

logger = logging.getLogger(__name__)

_POLL_S: Final = 0.05
_STOP_GRACE_S: Final = 10.0
INTERRUPT_GRACE_S: Final = 60.0
"""How long interrupted workers get to finish what is in flight and stage it: longer than a
backend lets requests in flight finish (the openai backend: 30 s), with room to stage."""
_REPEAT_AFTER_S: Final = 1.0
_BARRIER_TIMEOUT_S: Final = 24 * 3600.0
"""A barrier wait ends sooner: the launcher breaks it as soon as a worker fails."""


def run_workers(
    config: ExperimentConfig,
    experiment_id: str,
    results_dir: Path,
    progress: ProgressCallback | None,
    *,
    backend: InferenceBackend | None = None,
    verbose: bool = False,
) -> None:
    """Run every process of the experiment; each stages its own raw result.

    One process runs here, with ``backend`` (or a new instance of the configured one); more
    are started as workers, each creating its own backend from the registry.
    """
    if config.num_processes == 1:
        measure_process(
            config,
            experiment_id,
            backend=backend or create_backend(config.backend),
            results_dir=results_dir,
            context=WorkerContext(
                process_index=0,
                num_processes=1,
                files_dir=str(StagingRepository(results_dir).files_dir(experiment_id, 0)),
            ),
            stages=Stages(progress),
        )
        return
    _Workers(config, experiment_id, results_dir, progress, verbose).run()


@dataclass(frozen=True)
class _Message:
    """What a worker tells the launcher: a progress event, or how it failed."""

    process_index: int
    event: ProgressEvent | None = None
    failure: str | None = None


class _Workers:
    def __init__(
        self,
        config: ExperimentConfig,
        experiment_id: str,
        results_dir: Path,
        progress: ProgressCallback | None,
        verbose: bool,
    ) -> None:
        self.config = config
        self.count = config.num_processes
        self.context = multiprocessing.get_context("spawn")
        self.barrier = self.context.Barrier(self.count)
        self.messages: Any = self.context.Queue()
        self.merged = MergedProgress(progress or (lambda event: None), self.count)
        self.failures: dict[int, str] = {}
        port = free_port()
        self.processes: list[SpawnProcess] = [
            self.context.Process(
                target=_worker_main,
                args=(
                    config.model_dump_json(),
                    experiment_id,
                    str(results_dir),
                    rank,
                    self.count,
                    port,
                    verbose,
                    self.barrier,
                    self.messages,
                ),
                name=f"llem-worker-{rank}",
                daemon=False,
            )
            for rank in range(self.count)
        ]

    def run(self) -> None:
        try:
            # Workers start with Ctrl-C ignored (a spawned interpreter keeps an ignored
            # SIGINT), so one pressed while they import is the launching process's alone.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                for process in self.processes:
                    process.start()
            finally:
                signal.signal(signal.SIGINT, previous)
            self._watch()
        except KeyboardInterrupt:
            self._interrupt()
            raise
        except BaseException:
            self._stop()
            raise
        finally:
            self._drain()
            self.messages.close()

    def _watch(self) -> None:
        while True:
            self._drain(timeout_s=_POLL_S)
            codes = [process.exitcode for process in self.processes]
            failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)] or sorted(
                self.failures
            )
            if any(code == EXIT_INTERRUPTED for code in codes) and not self.failures:
                raise KeyboardInterrupt  # a worker was stopped (SIGTERM to the whole group)
            if failed:
                self._drain()
                rank = min(failed, key=lambda r: (r not in self.failures, r))
                self._stop()
                raise WorkerFailedError(self._describe(rank), process_index=rank)
            if all(code == 0 for code in codes):
                return

    def _drain(self, timeout_s: float = 0.0) -> None:
        """Pass on what the workers said (waiting up to ``timeout_s`` for the first)."""
        block = timeout_s > 0
        while True:
            try:
                message: _Message = self.messages.get(block, timeout_s if block else None)
            except (queue.Empty, OSError, ValueError):
                return
            block = False
            if message.failure is not None:
                self.failures.setdefault(message.process_index, message.failure)
            elif message.event is not None:
                self.merged(message.process_index, message.event)

    def _describe(self, rank: int) -> str:
        if rank in self.failures:
            return f"process {rank} failed: {self.failures[rank]}"
        return f"process {rank} {describe_exit(self.processes[rank].exitcode or 0)}"

    def _interrupt(self) -> None:
        """Ask every running worker to stop and stage what finished (SIGTERM: a worker's
        Ctrl-C), and wait for them; stop them outright after ``INTERRUPT_GRACE_S`` or at a
        second interruption."""
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                process.terminate()
        started = time.monotonic()
        while time.monotonic() < started + INTERRUPT_GRACE_S and any(
            process.pid is not None and process.exitcode is None for process in self.processes
        ):
            try:
                self._drain(timeout_s=_POLL_S)
            except KeyboardInterrupt:
                # The same request can arrive twice at once (to the process group, and
                # passed on by a wrapper such as `uv run`): only a later one means "now".
                if time.monotonic() - started >= _REPEAT_AFTER_S:
                    logger.warning("interrupted again: stopping the workers now")
                    break
        late = [
            rank
            for rank, p in enumerate(self.processes)
            if p.pid is not None and p.exitcode is None
        ]
        if late:
            logger.warning(
                "process(es) %s did not stage what they finished in time; stopping them",
                ", ".join(map(str, late)),
            )
        self._stop()

    def _stop(self) -> None:
        """Stop every worker still running, keeping nothing of theirs (a run that failed):
        break the barrier, ask each to abandon its run (SIGUSR1: it unloads its backend and
        exits; SIGTERM would have it stage what it finished, as for an interruption), and
        kill what is still there after ``_STOP_GRACE_S``."""
        self.barrier.abort()
        alive = [p for p in self.processes if p.pid is not None and p.exitcode is None]
        for rank, process in enumerate(self.processes):
            if process in alive and rank not in self.failures and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + _STOP_GRACE_S
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host``'s interface now ("": every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _worker_main(
    config_json: str,
    experiment_id: str,
    results_dir: str,
    rank: int,
    count: int,
    port: int,
    verbose: bool,
    barrier: Any,
    messages: Any,
) -> None:
    """Entry point of each worker process (imported by name in the child)."""
    from llem_harness.study.child import watch_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launching process handles Ctrl-C
    watch_parent(os.getppid())
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(count),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(count),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    configure_process_logging(verbose=verbose, prefix=f"[process {rank}] ")

    def report(event: ProgressEvent) -> None:
        messages.put(_Message(rank, event=event))

    try:
        config = ExperimentConfig.model_validate_json(config_json)
        signal.signal(signal.SIGTERM, _stop_once)  # the launcher's (or anyone's) "stop now"
        signal.signal(signal.SIGUSR1, _abandon)  # the launcher's "another one failed"
        try:
            measure_process(
                config,
                experiment_id,
                backend=create_backend(config.backend),
                results_dir=Path(results_dir),
                context=WorkerContext(
                    process_index=rank,
                    num_processes=count,
                    local_index=rank,
                    local_count=count,
                    files_dir=str(
                        StagingRepository(Path(results_dir)).files_dir(experiment_id, rank)
                    ),
                ),
                stages=Stages(report),
                barrier=_barrier(barrier),
            )
        finally:  # the run is over: nothing left to stop
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    except (threading.BrokenBarrierError, _Abandoned):
        raise SystemExit(3) from None  # another worker failed; the launcher reports it
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None  # what finished is staged
    except BaseException as exc:
        logger.debug("worker %d failed", rank, exc_info=True)
        messages.put(_Message(rank, failure=describe_exception(exc)))
        raise SystemExit(1) from None
    finally:
        messages.close()
        messages.join_thread()


class _Abandoned(BaseException):
    """Raised in a worker the launcher abandons (another one failed): it stages nothing, but
    its backend still unloads (a backend's own processes are stopped) before it exits."""


def _abandon(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    raise _Abandoned


def _stop_once(signum: int, frame: FrameType | None) -> None:
    """A worker's first SIGTERM (while it measures) stops its run as Ctrl-C would; later ones
    are ignored (the same request may come twice: to the whole process group, then from the
    launcher, which kills what has not stopped in time)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _barrier(barrier: Any) -> Callable[[], None]:
    def wait() -> None:
        barrier.wait(_BARRIER_TIMEOUT_S)

    return wait

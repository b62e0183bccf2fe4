"""One experiment across the tasks of a Slurm job step: ``srun llem run …`` inside an
allocation, or ``llem run --launcher slurm --nodes 2 --gpus-per-node 4``, which starts that
``srun`` itself (:mod:`llem_harness.slurm_run`).

Each task of the step is one process of the run: ``SLURM_PROCID`` is its rank,
``SLURM_STEP_NUM_TASKS`` the process count, ``SLURM_LOCALID`` its rank on its node. Task 0
coordinates (:class:`Coordinator`). It does what ``llem run`` does on one host before and
after the processes measure (checks the config, records the run in the store, saves the
result from the staged shares and indexes it: the store keeps one writer), and it serves the
other tasks (:class:`Follower`) over TCP with :mod:`multiprocessing.connection` (pickled
messages; each connection proves it holds a key task 0 made): llem's CPU-side barriers, their
progress, and how each one ended. Where to reach it (host, port, key, experiment id) it writes
into the results directory, which every node must share, as they share the staging; the
others wait for that file, then join.

Every task gets the environment ``torchrun`` gives (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` = task 0's host, ``MASTER_PORT`` = a
port free there), so a backend whose engine needs collectives initialises
``torch.distributed`` with ``init_method="env://"``: c10d's TCP store, served by task 0.
llem's own rendezvous is not torch's: the harness imports no framework, and a backend without
torch (an engine of its own, a server's client) runs across nodes the same way.

A task that fails tells task 0, which stops the others at once (``SIGUSR1``: each abandons
the run, as a local worker does); a task that dies (killed, its node lost) is noticed by its
connection closing. An interruption (SIGTERM from ``scancel``, or Ctrl-C of
``llem run --launcher slurm``, which Slurm passes to every task) makes each task stage what
it finished; task 0 saves the run, marked interrupted, once the others have ended (waiting up
to :data:`~llem_harness.launch.INTERRUPT_GRACE_S`). A task interrupted alone stops the others
at their next barrier, each with its share staged.
"""

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from types import FrameType
from typing import Any, Final

from llem_harness.errors import UsageError, WorkerFailedError
from llem_harness.launch import free_port
from llem_harness.progress import MergedProgress, ProgressCallback, ProgressEvent
from llem_persistence import StagingRepository

__all__ = [
    "RENDEZVOUS_TIMEOUT_S",
    "STOP_GRACE_S",
    "Coordinator",
    "Follower",
    "SlurmTask",
    "announce_failure",
    "local_count",
    "rendezvous_path",
    "slurm_task",
    "torchrun_environment",
]

logger = logging.getLogger(__name__)

RENDEZVOUS_TIMEOUT_S: Final = 600.0
"""How long the tasks wait for each other to start (Slurm starts a step's tasks together;
a node may still take minutes to import a framework from a network filesystem)."""
_POLL_S: Final = 0.2
_END_GRACE_S: Final = 30.0
"""How long task 0 waits for the others to end after the result is saved or the run failed."""
_STOP_SIGNAL: Final = signal.SIGUSR1
STOP_GRACE_S: Final = 10.0
"""How long a task told to stop (another one failed) has to leave its measurement before
it is ended outright."""


@dataclass(frozen=True)
class SlurmTask:
    """This process as one task of a Slurm job step of several tasks."""

    rank: int
    count: int
    local_rank: int
    step: str
    """``<job id>.<step id>.<restart count>``: names the step's rendezvous."""


def slurm_task(environ: Mapping[str, str] | None = None) -> SlurmTask | None:
    """This process as a task of a job step ``srun`` started with several tasks, from
    Slurm's variables; None outside one (a batch script, ``srun -n 1``, no Slurm)."""
    env = os.environ if environ is None else environ
    try:
        count = int(env["SLURM_STEP_NUM_TASKS"])
        rank = int(env["SLURM_PROCID"])
        local_rank = int(env.get("SLURM_LOCALID", "0"))
        job = env["SLURM_JOB_ID"]
    except (KeyError, ValueError):
        return None
    if count < 2 or not 0 <= rank < count:
        return None
    step = f"{job}.{env.get('SLURM_STEP_ID', '0')}.{env.get('SLURM_RESTART_COUNT', '0')}"
    return SlurmTask(rank=rank, count=count, local_rank=local_rank, step=step)


def rendezvous_path(results_dir: Path, task: SlurmTask) -> Path:
    """Where task 0 says how to reach it: in the results directory's staging."""
    return StagingRepository(results_dir).root / f"slurm-{task.step}.rendezvous"


def announce_failure(results_dir: Path, task: SlurmTask, reason: str) -> None:
    """Task 0 failed before the others could join (``reason``): tell them where they look,
    so that they stop at once instead of waiting for it."""
    with contextlib.suppress(OSError):
        _write_private(rendezvous_path(results_dir, task), {"error": reason})


def torchrun_environment(
    task: SlurmTask, hosts: Mapping[int, str], master_port: int
) -> dict[str, str]:
    """The variables ``torchrun`` sets, for this task among ``hosts`` (rank -> host)."""
    return {
        "RANK": str(task.rank),
        "WORLD_SIZE": str(task.count),
        "LOCAL_RANK": str(task.local_rank),
        "LOCAL_WORLD_SIZE": str(local_count(task, hosts)),
        "MASTER_ADDR": hosts[0],
        "MASTER_PORT": str(master_port),
    }


def local_count(task: SlurmTask, hosts: Mapping[int, str]) -> int:
    """How many of the step's tasks share this task's host."""
    mine = hosts[task.rank]
    return max(sum(1 for host in hosts.values() if host == mine), task.local_rank + 1)


@dataclass(frozen=True)
class _Stop:
    """Why the processes stop before the end: ``interrupted`` (each stages what it
    finished), or ``failed`` (process ``rank`` failed, ``reason`` says how; the others keep
    nothing)."""

    kind: str
    reason: str = ""
    rank: int = 0


class Coordinator:
    """Task 0's side: serves the other tasks and takes part in the barriers itself.

    Use as a context manager around the run (it says where to reach it as it starts, and
    removes that when it closes); :meth:`join` before measuring, :meth:`wait` as the measurement's barrier,
    :meth:`finish` once the result is saved, :meth:`fail` or :meth:`interrupt` when the run
    ends otherwise.
    """

    def __init__(
        self,
        task: SlurmTask,
        results_dir: Path,
        experiment_id: str,
        progress: ProgressCallback | None = None,
        *,
        stuck: Callable[[str], None] = lambda reason: os._exit(1),
    ) -> None:
        """``stuck(reason)`` ends this process when its backend does not let go of a run
        that failed elsewhere (it records the failure first, where it can)."""
        self.task = task
        self.file = rendezvous_path(results_dir, task)
        self.host = socket.gethostname()
        self.master_port = free_port("")  # for c10d, reached from every node
        self._key = secrets.token_bytes(32)
        self._listener = Listener(("", 0), family="AF_INET", authkey=self._key)
        self._barrier = threading.Barrier(task.count)
        # reentrant: the stop signal's handler asks why while this thread may hold it
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._hosts: dict[int, str] = {0: self.host}
        self._connections: dict[int, tuple[Connection, threading.Lock]] = {}
        self._ended: set[int] = set()
        self._stop: _Stop | None = None
        self._saved: str | None = None
        self._closing = False
        self._signals = _StopSignal(lambda: stuck(self._why().reason))
        self._merged = MergedProgress(progress or (lambda event: None), task.count)
        self._accepter = threading.Thread(target=self._accept, name="llem-rendezvous", daemon=True)
        self._accepter.start()
        try:
            self._publish(experiment_id)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Coordinator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._listener.address[1])

    @property
    def hosts(self) -> dict[int, str]:
        with self._lock:
            return dict(self._hosts)

    def _publish(self, experiment_id: str) -> None:
        """Write where to reach this task (readable by its user only) for the others."""
        document = {
            "host": self.host,
            "port": self.port,
            "key": self._key.hex(),
            "experiment_id": experiment_id,
            "master_port": self.master_port,
        }
        _write_private(self.file, document)

    def progress(self, rank: int, event: ProgressEvent) -> None:
        with self._lock:
            self._merged(rank, event)

    def join(self, timeout_s: float = RENDEZVOUS_TIMEOUT_S) -> dict[int, str]:
        """Wait until every task has joined; their hosts, by rank."""
        try:
            self.wait(timeout_s)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.file.unlink()  # the key is no longer needed on disk
        return self.hosts

    def wait(self, timeout_s: float | None = None) -> None:
        """The barrier of every task; raises when the run stops instead: KeyboardInterrupt
        (interrupted), :class:`WorkerFailedError` (a task failed, or did not join)."""
        try:
            self._barrier.wait(timeout_s)
        except threading.BrokenBarrierError:
            self._raise(self._why())

    def _raise(self, stop: _Stop) -> None:
        if stop.kind == "interrupted":
            raise KeyboardInterrupt from None
        raise WorkerFailedError(stop.reason, process_index=stop.rank) from None

    def _why(self) -> _Stop:
        with self._lock:
            if self._stop is not None:
                return self._stop
            missing = [rank for rank in range(self.task.count) if rank not in self._hosts]
        if not missing:
            return _Stop("failed", "a process did not come to a barrier in time")
        return _Stop(
            "failed",
            f"processes {', '.join(map(str, missing))} of {self.task.count} did not join "
            f"process 0 in time (they look for {self.file.name} in "
            f"{self.file.parent}: is the results directory on a filesystem every node "
            "shares?)",
            rank=missing[0],
        )

    def measuring(self) -> contextlib.AbstractContextManager[None]:
        """While this task measures, another task's failure reaches it at once (as the
        :class:`WorkerFailedError` that says which failed)."""
        return self._signals.armed(lambda: self._raise(self._why()), self._failed)

    def _failed(self) -> bool:
        with self._lock:
            return self._stop is not None and self._stop.kind == "failed"

    def finish(self, directory: Path) -> None:
        """The result is saved in ``directory``: tell the others, and wait for them to end.
        Raises nothing: the run is over, whatever happens to the others now."""
        with self._lock:
            self._saved = str(directory)
        try:
            self._barrier.wait(_END_GRACE_S)
            self._await_others(_END_GRACE_S)
        except threading.BrokenBarrierError:
            logger.warning(
                "not every process heard that the result is saved (%s); it is saved in %s",
                self._why().reason,
                directory,
            )
        except KeyboardInterrupt:
            logger.warning("interrupted once the result was saved, in %s", directory)

    def fail(self, reason: str) -> None:
        """This task failed (``reason``): stop the others, and wait for them to end."""
        self._decide(_Stop("failed", reason, rank=0))
        self._await_others(_END_GRACE_S)

    def interrupt(self, grace_s: float) -> None:
        """This task was interrupted: the others stop and stage what they finished; wait up
        to ``grace_s`` for them to end. A failure decided before wins: it is raised."""
        self._decide(_Stop("interrupted"))
        stop = self._why()
        self._await_others(grace_s)
        if stop.kind == "failed":
            self._raise(stop)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            connections = list(self._connections.values())
        with contextlib.suppress(OSError, AuthenticationError):  # wakes the accepting thread
            Client(("127.0.0.1", self.port), family="AF_INET", authkey=self._key).close()
        self._accepter.join(5.0)
        self._listener.close()
        for connection, _ in connections:
            _shut(connection)
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()

    # -- the other tasks' side of it, one thread each --------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                connection = self._listener.accept()
            except (OSError, EOFError, AuthenticationError) as exc:
                if self._closing:
                    return
                logger.warning("a connection to process 0 was refused: %s", exc)
                continue
            if self._closing:
                connection.close()
                return
            _keep_alive(connection)
            threading.Thread(
                target=self._serve, args=(connection,), name="llem-rendezvous-task", daemon=True
            ).start()

    def _serve(self, connection: Connection) -> None:
        rank: int | None = None
        try:
            kind, rank, host = connection.recv()
            with self._lock:
                refused = kind != "hello" or not 0 < rank < self.task.count or rank in self._hosts
                if not refused:
                    self._hosts[rank] = host
                    self._connections[rank] = (connection, threading.Lock())
            if refused:
                rank = None
                connection.close()
                return
            while True:
                message = connection.recv()
                if message[0] == "wait":
                    self._send(rank, self._wait_for())
                elif message[0] == "progress":
                    self.progress(rank, message[1])
                elif message[0] == "failed":
                    self._decide(_Stop("failed", f"process {rank} failed: {message[1]}", rank))
                elif message[0] == "ended":
                    with self._changed:
                        self._ended.add(rank)
                        over = self._saved is not None
                    if message[1] and not over:  # interrupted alone: the whole run stops
                        self._decide(_Stop("interrupted"))
                    return
        except (EOFError, OSError, ValueError, TypeError):
            if rank is not None and rank not in self._ended:
                self._decide(
                    _Stop(
                        "failed",
                        f"process {rank} (on {self.hosts.get(rank, 'its node')}) ended without "
                        "a word: killed, or its node was lost",
                        rank,
                    )
                )
        finally:
            connection.close()
            with self._changed:
                if rank is not None:
                    self._ended.add(rank)
                self._changed.notify_all()

    def _wait_for(self) -> tuple[Any, ...]:
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            with self._lock:
                saved = self._saved
            if saved is None:
                stop = self._why()
                return ("stop", stop.kind, stop.reason, stop.rank)
            # the last barrier, given up on after the save (a process ended before it)
        with self._lock:
            return ("go", {"hosts": dict(self._hosts), "saved": self._saved})

    def _send(self, rank: int, message: tuple[Any, ...]) -> None:
        with self._lock:
            connection, lock = self._connections[rank]
        with lock, contextlib.suppress(OSError):
            connection.send(message)

    def _decide(self, stop: _Stop) -> None:
        """Stop the run (the first decision stands): break the barrier and tell every task
        now, not only at its next barrier; a failure stops this task's measurement too."""
        with self._lock:
            if self._stop is not None:
                return
            self._stop = stop
            ranks = list(self._connections)
        self._barrier.abort()
        for rank in ranks:
            self._send(rank, ("stop", stop.kind, stop.reason, stop.rank))
        if stop.kind == "failed" and stop.rank != 0:
            self._signals.fire()

    def _await_others(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not set(self._hosts) - {0} <= self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    late = sorted(set(self._hosts) - {0} - self._ended)
                    logger.warning("process(es) %s did not end in time", ", ".join(map(str, late)))
                    return
                self._changed.wait(left)


class Follower:
    """A task other than 0: joins task 0 and takes part in its barriers."""

    def __init__(
        self, task: SlurmTask, results_dir: Path, *, timeout_s: float = RENDEZVOUS_TIMEOUT_S
    ) -> None:
        self.task = task
        file = rendezvous_path(results_dir, task)
        deadline = time.monotonic() + timeout_s
        while True:
            found = _read_rendezvous(file)
            if found is not None and "error" in found:
                raise WorkerFailedError(
                    f"process 0 failed before the run started: {found['error']}",
                    process_index=0,
                )
            if found is not None:
                try:
                    self._connection = Client(
                        (found["host"], int(found["port"])),
                        family="AF_INET",
                        authkey=bytes.fromhex(found["key"]),
                    )
                    break
                except (OSError, EOFError, AuthenticationError, ValueError):
                    pass  # an older step's file, or process 0 not listening yet
            if time.monotonic() > deadline:
                raise UsageError(
                    f"process {task.rank} found no process 0 to join within {timeout_s:g} s: "
                    f"it looks for {file}; is the results directory on a filesystem every "
                    "node shares?"
                )
            time.sleep(_POLL_S)
        self.experiment_id: str = found["experiment_id"]
        self.master_port = int(found["master_port"])
        self._send_lock = threading.Lock()
        self._replies: list[tuple[Any, ...]] = []
        self._arrived = threading.Condition()
        self._stop: _Stop | None = None
        self._gone = False
        self._signals = _StopSignal(self._stuck)
        self.hosts: dict[int, str] = {}
        _keep_alive(self._connection)
        self._reader = threading.Thread(
            target=self._read, name="llem-rendezvous-reader", daemon=True
        )
        try:
            self._send(("hello", task.rank, socket.gethostname()))
            self._reader.start()
            self.hosts = self.wait()["hosts"]
        except BaseException:
            _shut(self._connection)
            raise

    def wait(self) -> dict[str, Any]:
        """The barrier of every task: what task 0 shares (``hosts``, ``saved``)."""
        self._send(("wait",))
        with self._arrived:
            while not self._replies and self._stop is None and not self._gone:
                self._arrived.wait()
            if self._replies:
                reply = self._replies.pop(0)
                if reply[0] == "go":
                    go: dict[str, Any] = reply[1]
                    return go
        self._raise()
        raise AssertionError("unreachable")

    def measuring(self) -> contextlib.AbstractContextManager[None]:
        """While this task measures, another task's failure reaches it at once (as the
        :class:`WorkerFailedError` that says which failed); an interruption, at its next
        barrier (with its share staged)."""
        return self._signals.armed(self._raise, self._failed)

    def barrier(self) -> None:
        """:meth:`wait`, for the measurement's barriers."""
        self.wait()

    def _failed(self) -> bool:
        with self._arrived:
            return self._gone or (self._stop is not None and self._stop.kind == "failed")

    def progress(self, event: ProgressEvent) -> None:
        with contextlib.suppress(OSError):
            self._send(("progress", event))

    def fail(self, reason: str) -> None:
        with contextlib.suppress(OSError):
            self._send(("failed", reason))

    def end(self, *, interrupted: bool = False) -> None:
        with contextlib.suppress(OSError):
            self._send(("ended", interrupted))
        _shut(self._connection)
        self._reader.join(5.0)

    def _raise(self) -> None:
        stop = self._stop
        if stop is None:
            raise WorkerFailedError(
                f"process 0 (on {self.hosts_or_unknown()}) is gone: killed, or its node was lost",
                process_index=0,
            )
        if stop.kind == "interrupted":
            raise KeyboardInterrupt
        raise WorkerFailedError(f"stopped: {stop.reason}", process_index=stop.rank)

    def _stuck(self) -> None:
        reason = self._stop.reason if self._stop is not None else "process 0 is gone"
        logger.error(
            "process %d: stopped (%s), but its backend did not let go within %g s; exiting",
            self.task.rank,
            reason,
            STOP_GRACE_S,
        )
        os._exit(3)

    def hosts_or_unknown(self) -> str:
        return self.hosts.get(0, "its node")

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self._connection.send(message)

    def _read(self) -> None:
        """Every message of task 0: replies to :meth:`wait`, and a stop at any time."""
        try:
            while True:
                message = self._connection.recv()
                with self._arrived:
                    if message[0] == "stop":
                        self._stop = _Stop(message[1], message[2], message[3])
                    else:
                        self._replies.append(message)
                    self._arrived.notify_all()
                if message[0] == "stop" and message[1] == "failed":
                    self._signals.fire()
        except (EOFError, OSError, TypeError):  # TypeError: closed by end() meanwhile
            with self._arrived:
                self._gone = True
                self._arrived.notify_all()
            self._signals.fire()  # process 0 is gone: stop measuring now


class _StopSignal:
    """A stop that reaches the main thread while it measures: :meth:`fire` (from any thread)
    sends :data:`_STOP_SIGNAL` to it, whose handler raises what ``stop()`` raises, once.
    Outside :meth:`armed` (and where the run is not in the main thread) nothing is sent: the
    stop is found at the next barrier.

    Python runs the handler between bytecodes; a backend blocked in native code (a
    collective waiting for a process that is gone) never gets there. Where the handler has
    not run :data:`STOP_GRACE_S` after the signal, ``stuck()`` is called (from another
    thread) to end the process; once it has run, the measurement's cleanup (a backend's
    unload) takes the time it needs."""

    def __init__(self, stuck: Callable[[], None]) -> None:
        self._stuck = stuck
        self._lock = threading.Lock()
        self._inside = False
        self._armed = False
        self._handled = False

    @contextlib.contextmanager
    def armed(self, stop: Callable[[], None], pending: Callable[[], bool]) -> Iterator[None]:
        """Armed while the block runs; a stop that came before (``pending()``) is raised at
        once."""
        if pending():
            stop()
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            signal.signal(_STOP_SIGNAL, signal.SIG_IGN)
            with self._lock:
                self._handled = True  # the main thread runs Python: it is not stuck
            stop()

        previous = signal.signal(_STOP_SIGNAL, handle)
        with self._lock:
            self._armed = self._inside = True
        try:
            if pending():  # came while arming
                self.fire()
            yield
        finally:
            # a signal sent before this took the lock has reached the handler already
            with self._lock:
                self._armed = self._inside = False
            signal.signal(_STOP_SIGNAL, previous)

    def fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            signal.pthread_kill(threading.main_thread().ident or 0, _STOP_SIGNAL)
        timer = threading.Timer(STOP_GRACE_S, self._check)
        timer.daemon = True
        timer.start()

    def _check(self) -> None:
        with self._lock:
            stuck = self._inside and not self._handled
        if stuck:
            self._stuck()


def _write_private(file: Path, document: Mapping[str, object]) -> None:
    """``document`` as JSON in ``file``, readable by this user only, replaced atomically."""
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(f".{file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(temporary, flags, 0o600), "w", encoding="utf-8") as out:
        json.dump(document, out)
    temporary.replace(file)


def _read_rendezvous(file: Path) -> dict[str, Any] | None:
    """What task 0 wrote, if it is there, whole, and written by this user for this user
    only (a file anyone else could have planted is not trusted: the key admits pickles)."""
    try:
        descriptor = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(descriptor, encoding="utf-8") as handle:
        status = os.fstat(handle.fileno())
        if status.st_uid != os.getuid() or status.st_mode & 0o077:
            return None
        try:
            found = json.loads(handle.read())
        except (OSError, ValueError):
            return None
    if not isinstance(found, dict):
        return None
    if "error" in found or {"host", "port", "key", "experiment_id"} <= set(found):
        return found
    return None


def _keep_alive(connection: Connection) -> None:
    """TCP keepalive on ``connection``, so that a peer whose node went down (no FIN ever
    comes) is noticed in about two minutes."""
    with contextlib.suppress(OSError, AttributeError):
        probe = socket.fromfd(connection.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
            probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 6)


def _shut(connection: Connection) -> None:
    """Close ``connection`` so that a thread blocked reading it wakes (at EOF) first."""
    with contextlib.suppress(OSError):
        probe = socket.fromfd(connection.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        with probe:
            probe.shutdown(socket.SHUT_RDWR)
    connection.close()

"""One run of a study, in its own process: ``python -m llem_harness.study.child runs/run_0003.json``.

It loads the :class:`~llem_harness.study.spec.ChildSpec`, runs the experiment with plain
progress lines on stdout (which the study sends to ``runs/run_0003.log``) and writes nothing
else. Its last line says how it ended: ``result: <directory>`` (exit 0) or ``error: <why>``
(exit 1, 2 or 130, as ``llem run``).

When the study process dies (SIGKILL, a crash), its child must not run on unattended. A
watchdog thread here checks every half second that the parent is still the process that
started it; when it is not, it sends SIGTERM to the child's process group (the child and the
worker processes it launched), then SIGKILL if that group is still alive 10 s later. The
worker processes of a run watch their launching process the same way. A thread in the child was chosen over
``prctl(PR_SET_PDEATHSIG)`` in a ``preexec_fn``: it needs no ``preexec_fn`` (unsafe while the
parent runs threads, such as Rich's refresh thread), it does not fire when merely the
launching *thread* of the parent exits, and it works beyond Linux.
"""

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Final

__all__ = ["main", "watch_parent"]

PARENT_POLL_S: Final = 0.5
KILL_AFTER_S: Final = 10.0


def watch_parent(parent_pid: int, *, interval_s: float = PARENT_POLL_S) -> threading.Thread:
    """Start the daemon thread that stops this process group once ``parent_pid`` is gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        _signal_own_group(signal.SIGTERM)
        time.sleep(KILL_AFTER_S)
        _signal_own_group(signal.SIGKILL)

    thread = threading.Thread(target=watch, name="llem-study-parent-watch", daemon=True)
    thread.start()
    return thread


def _signal_own_group(signum: int) -> None:
    # The study starts each child as the leader of a new session; run by hand it is not, and
    # then only the process itself is signalled.
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signum)
    else:
        os.kill(os.getpid(), signum)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the spec named by the only argument; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        _say("error: usage: python -m llem_harness.study.child SPEC.json")
        return 2
    try:
        return _run(Path(args[0]))
    except KeyboardInterrupt:
        _say("error: interrupted")
        return 130  # EXIT_INTERRUPTED, without importing the harness's errors here


def _run(spec_file: Path) -> int:
    from llem_harness.study.spec import ChildSpec
    from llem_schema import LlemError

    try:
        spec = ChildSpec.load(spec_file)
    except (OSError, ValueError) as exc:
        _say(f"error: cannot read the run's spec {spec_file}: {exc}".splitlines()[0])
        return 2
    if spec.parent_pid is not None:
        watch_parent(spec.parent_pid)

    from llem_harness.errors import describe_exception, exit_code_for
    from llem_harness.logs import configure_process_logging
    from llem_harness.progress import PrintProgress
    from llem_harness.run import run_experiment

    configure_process_logging(verbose=spec.verbose)
    _say(
        f"run {spec.run_index} of study {spec.study_id}: experiment {spec.experiment_id}, "
        f"pid {os.getpid()}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}"
    )
    try:
        measured = run_experiment(
            spec.config,
            progress=PrintProgress(sys.stdout),
            store=Path(spec.store_path) if spec.store_path else False,
            experiment_id=spec.experiment_id,
            study_id=spec.study_id,
            verbose=spec.verbose,
            save_interrupted=False,  # the study runs it again; a part is no result of it
            launcher="local",  # a run of its own, even inside a step of several srun tasks
        )
    except LlemError as error:
        _say(f"error: {error}")
        return exit_code_for(error)
    except Exception as exc:
        traceback.print_exc(file=sys.stdout)
        _say(f"error: {describe_exception(exc)}")
        return 1
    _say(f"result: {measured.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

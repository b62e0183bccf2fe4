"""Start and stop a one-node Slurm cluster of this host, for the tests and the benches of
``llem study --executor slurm``.

Debian's munge and Slurm daemons (``apt-get install slurmctld slurmd slurm-client munge``),
run as root, with everything in one directory: the munge key and socket, ``slurm.conf``,
Slurm's state and spool, the pid files and the logs (``DIR/log``). The cluster listens on
ports of its own, chosen free at start, so several can run on one host at once; it touches
nothing outside its directory, and ``stop`` ends only the daemons whose command line names it.

    python scripts/local_slurm.py start DIR   # prints: export SLURM_CONF=DIR/slurm.conf
    python scripts/local_slurm.py stop DIR

``tests/conftest.py`` (the ``slurm_cluster`` fixture) and ``bench/bench_study_slurm.py`` load
this file and call :func:`start` and :func:`stop`. Standard library only.
"""

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

__all__ = ["COMMANDS", "missing", "start", "stop", "unavailable"]

COMMANDS: Final = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
"""What a local cluster needs: the daemons and the client commands used here and by llem."""

_START_TIMEOUT_S: Final = 30.0
_STOP_TIMEOUT_S: Final = 15.0
_PID_FILES: Final = ("slurmctld.pid", "slurmd.pid", "munged.pid")


def missing() -> list[str]:
    """The commands of :data:`COMMANDS` this host lacks (``/usr/sbin`` counted)."""
    return [name for name in COMMANDS if _binary(name) is None]


def unavailable() -> str | None:
    """Why no local cluster can start here (commands missing, not root), or None."""
    lacking = missing()
    if not lacking and os.geteuid() == 0:
        return None
    return (
        "a local Slurm cluster needs root and Debian's slurmctld slurmd slurm-client munge "
        f"({', '.join(lacking) or 'not root'})"
    )


def start(root: Path) -> dict[str, str]:
    """Start a one-node cluster in ``root`` (created if need be) and wait until its node is
    idle; return what Slurm's commands need in their environment (``SLURM_CONF``). A cluster
    that does not come up is stopped again, and the error names its logs."""
    root = root.absolute()
    if _running(root):
        raise RuntimeError(f"a local Slurm cluster already runs in {root}: stop it first")
    for part in ("state", "spool", "log"):
        (root / part).mkdir(parents=True, exist_ok=True)
    key = root / "munge.key"
    key.unlink(missing_ok=True)
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = root / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, socket_path, ports=(_free_port(), _free_port())))
    env = os.environ | {"SLURM_CONF": str(conf)}
    try:
        subprocess.run(
            [
                _required("munged"),
                "--force",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--pid-file={root / 'munged.pid'}",
                f"--seed-file={root / 'munged.seed'}",
            ],
            check=True,
            timeout=_START_TIMEOUT_S,
        )
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run(
                [_required(daemon), "-f", str(conf)], check=True, env=env, timeout=_START_TIMEOUT_S
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while "idle" not in _sinfo(env):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Slurm node did not come up: see {root / 'log'}")
            time.sleep(0.2)
    except BaseException:
        stop(root)
        raise
    return {"SLURM_CONF": str(conf)}


def stop(root: Path) -> None:
    """Stop the cluster of ``root``: ``scontrol shutdown``, then, for any of its daemons
    still there after a while, SIGTERM (then SIGKILL); munged last. Only processes whose
    command line names ``root`` are signalled; a cluster already stopped is no error."""
    root = root.absolute()
    conf = root / "slurm.conf"
    if conf.is_file() and _pid(root, "slurmctld.pid") is not None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                [_binary("scontrol") or "scontrol", "shutdown"],
                env=os.environ | {"SLURM_CONF": str(conf)},
                capture_output=True,
                timeout=_STOP_TIMEOUT_S,
                check=False,
            )
    for names in (("slurmctld.pid", "slurmd.pid"), ("munged.pid",)):
        pids = [pid for name in names if (pid := _pid(root, name)) is not None]
        if names != ("munged.pid",):  # scontrol shutdown stops both Slurm daemons
            _wait_gone(root, pids, _STOP_TIMEOUT_S)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [pid for pid in pids if _ours(root, pid)]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if _wait_gone(root, pids, _STOP_TIMEOUT_S):
                break


def _slurm_conf(root: Path, socket_path: Path, *, ports: tuple[int, int]) -> str:
    host = socket.gethostname().split(".")[0]
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"""ClusterName=llemtest
SlurmctldHost={host}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
InactiveLimit=0
KillWait=5
NodeName={host} CPUs={os.cpu_count()} RealMemory={max(memory_mb - 1024, 1024)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


def _sinfo(env: dict[str, str]) -> str:
    try:
        return subprocess.run(
            [_required("sinfo"), "--noheader", "--format=%t"],
            capture_output=True,
            text=True,
            env=env,
            timeout=_START_TIMEOUT_S,
            check=False,
        ).stdout
    except subprocess.TimeoutExpired:
        return ""


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    sbin = Path("/usr/sbin", name)
    return str(sbin) if sbin.exists() else None


def _required(name: str) -> str:
    found = _binary(name)
    if found is None:
        raise RuntimeError(
            f"{name} not found (apt-get install slurmctld slurmd slurm-client munge)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


def _pid(root: Path, name: str) -> int | None:
    """The pid in ``root/name`` if that process runs and its command line names ``root``."""
    try:
        pid = int((root / name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _ours(root, pid) else None


def _ours(root: Path, pid: int) -> bool:
    """Whether process ``pid`` runs with ``root`` in its command line (a zombie has none)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return os.fsencode(str(root)) in command


def _running(root: Path) -> bool:
    return any(_pid(root, name) is not None for name in _PID_FILES)


def _wait_gone(root: Path, pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_ours(root, pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("directory", type=Path, help="the cluster's directory")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.directory)
        return 0
    reason = unavailable()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    try:
        env = start(args.directory)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"local Slurm cluster: {exc}", file=sys.stderr)
        return 1
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The file locks, on real files: another process, and a second open of the same file."""

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llem_persistence.locks import exclusive, is_locked, try_exclusive

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no flock: nothing is locked")

HOLDER = (
    "import sys, time\n"
    "from llem_persistence.locks import exclusive\n"
    "with exclusive(sys.argv[1]):\n"
    "    print('holding', flush=True); time.sleep(60)\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``tmp_path / "lock"`` through :func:`exclusive`."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "lock")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "holding\n"
    yield process
    if process.returncode is None:  # not killed by the test
        process.kill()
        process.communicate()


def test_a_lock_another_process_holds_is_seen_and_refused_until_it_is_killed(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "lock"
    assert is_locked(path)
    with path.open("ab") as handle:
        assert not try_exclusive(handle)
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
        assert not is_locked(path)  # the kernel let the dead holder's lock go
        assert try_exclusive(handle)
        assert is_locked(path)
    assert not is_locked(path)  # closing the file released it


def test_exclusive_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    entered = threading.Event()

    def take() -> None:
        with exclusive(path):
            entered.set()

    with path.open("ab") as held:  # a second open file description: they exclude each other
        assert try_exclusive(held)
        waiter = threading.Thread(target=take)
        waiter.start()
        assert not entered.wait(0.3)
    assert entered.wait(10.0)
    waiter.join()
    assert not is_locked(path)


def test_exclusive_creates_the_file_and_is_seen_while_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with exclusive(path):
        assert path.is_file()
        assert is_locked(path)
        with path.open("rb") as other:
            assert not try_exclusive(other)
    assert not is_locked(path)
    with pytest.raises(FileNotFoundError), exclusive(tmp_path / "missing" / "lock"):
        pass


def test_a_probe_creates_nothing_and_does_not_see_another_probe(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    assert not is_locked(path)
    assert not path.exists()
    path.touch()
    with path.open("rb") as probe:
        import fcntl

        fcntl.flock(probe.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe, caught mid-way
        assert not is_locked(path)

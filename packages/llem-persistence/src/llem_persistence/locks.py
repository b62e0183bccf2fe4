"""Advisory file locks that the kernel releases when their holder exits, even by SIGKILL.

``flock`` (POSIX). A lock belongs to an open file description: two opens of one file exclude
each other even within one process, and a child process that inherits the open file holds the
lock with it until every copy is closed. Where there is no ``flock`` (Windows) nothing is
locked: every lock is granted at once and no probe finds one held.
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from os import PathLike
from typing import Protocol

__all__ = ["HasFileno", "exclusive", "is_locked", "try_exclusive"]

if sys.platform != "win32":
    import fcntl


class HasFileno(Protocol):
    """An open file: anything with a file descriptor."""

    def fileno(self) -> int: ...


@contextlib.contextmanager
def exclusive(path: str | PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs, once
    any other holder has let it go; a missing directory is a ``FileNotFoundError``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def try_exclusive(file: HasFileno) -> bool:
    """Take an exclusive lock on the open ``file`` without waiting; True if it is held
    through ``file`` now (until it is closed), False if someone else holds one."""
    if sys.platform == "win32":  # pragma: no cover - no flock
        return True
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_locked(path: str | PathLike[str]) -> bool:
    """Whether an exclusive lock on ``path`` is held now (by any open file, this process's
    included); False when there is no such file.

    The probe takes a shared lock for an instant, so two probes never see each other, and
    it creates nothing.
    """
    if sys.platform == "win32":  # pragma: no cover - no flock
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

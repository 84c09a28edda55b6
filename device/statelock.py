"""One appliance per state dir: an exclusive ``flock`` on ``<state dir>/.lock``.

The lock is held for as long as the process runs (the kernel drops it when the process
dies, however it dies), so a second ``edgeroom run`` on the same state dir stops at once
with one line naming the holder instead of fighting over the devices, the web port and
the files.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from drivers.errors import EdgeroomError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class StateDirLocked(EdgeroomError, BlockingIOError):
    """Another process holds the state dir."""


class StateDirLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<StateDirLock {self.path} {'held' if self._fd is not None else 'free'}>"

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateDirLocked` (never waits)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StateDirLocked(
                f"another edgeroom (pid {holder}) is already running with state dir "
                f"{self.path.parent}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the lock

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

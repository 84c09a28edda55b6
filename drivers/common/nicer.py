"""A thread that is nicer only while it runs a native encoder.

Linux keeps a nice value per thread. The frame thread runs Python (reading the camera,
packetizing, sending) at the event loop's priority, and x264 or libvpx, which release
the GIL, at the encoders' nicer value, by moving its own nice value up for the encode
and back down after it. Moving it back down needs CAP_SYS_NICE or an RLIMIT_NICE that
allows the thread's own value (the unit's ``LimitNICE=20``); without either,
:meth:`NicerWhile.for_this_thread` says so and the caller hands encodes to a nicer
worker thread instead.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

#: The bit of CAP_SYS_NICE in a capability mask (linux/capability.h).
CAP_SYS_NICE = 23


def has_cap_sys_nice(status: Path = Path("/proc/self/status")) -> bool:
    """Whether the process holds CAP_SYS_NICE in its effective set."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def may_lower_nice_to(nice: int) -> bool:
    """Whether a thread of this process may set its nice value down to ``nice``: the
    kernel allows it with CAP_SYS_NICE, or when ``20 - nice`` is within RLIMIT_NICE."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    if soft == resource.RLIM_INFINITY or 20 - nice <= soft:
        return True
    return has_cap_sys_nice()


class NicerWhile:
    """``with nicer:`` runs its block at ``nice`` and then returns the calling thread (the
    one that made it) to the value it had. Made by :meth:`for_this_thread`."""

    def __init__(self, tid: int, base: int, nice: int) -> None:
        self.tid, self.base, self.nice = tid, base, nice
        self.failures = 0

    @classmethod
    def for_this_thread(cls, nice: int) -> NicerWhile | None:
        """For the calling thread, or None when it could not get its value back after a
        block (nor need to: it is at ``nice`` or nicer already)."""
        tid = threading.get_native_id()
        try:
            base = os.getpriority(os.PRIO_PROCESS, tid)
        except OSError as exc:
            log.debug("cannot read the thread's nice value: %s", exc)
            return None
        if base >= nice or not may_lower_nice_to(base):
            return None
        return cls(tid, base, nice)

    def __enter__(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, self.tid, self.nice)
        except OSError as exc:  # a sandbox that refuses it: run the block as it is
            self._failed(exc)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, self.tid, self.base)
        except OSError as error:
            self._failed(error)

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        if self.failures == 1:
            log.warning("cannot change the nice value of thread %d: %s", self.tid, exc)

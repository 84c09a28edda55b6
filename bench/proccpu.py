"""CPU time of a process and of its threads, from ``/proc`` (utime + stime), and how
often each thread woke (its voluntary context switches: it slept and was woken)."""

from __future__ import annotations

import os
import re
import time
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
#: a worker's number (``h264-camera_0``, ``asyncio_3``): threads of one pool add up
_POOL_INDEX = re.compile(r"_\d+$")


def _stat_seconds(path: str) -> float:
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    return _stat_seconds(f"/proc/{pid}/stat")


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of each kind of thread of ``pid``, by OS name (a pool's workers
    together; the event loop's thread is named after the program, ``python``)."""
    out: dict[str, float] = {}
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{task.path}/comm") as f:
                name = _POOL_INDEX.sub("", f.read().strip())
            seconds = _stat_seconds(f"{task.path}/stat")
        except OSError:
            continue  # the thread ended meanwhile
        out[name] = out.get(name, 0.0) + seconds
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What each kind of thread took between two :func:`cpu_by_thread` readings (a
    thread that ended meanwhile takes its time with it), largest first."""
    delta = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


def wakeups_by_thread(pid: int) -> dict[str, int]:
    """Voluntary context switches of each kind of thread of ``pid`` (named as in
    :func:`cpu_by_thread`): each is one sleep and wake-up. On a virtual machine a
    wake-up costs tens of microseconds of CPU before any work."""
    out: dict[str, int] = {}
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{task.path}/comm") as f:
                name = _POOL_INDEX.sub("", f.read().strip())
            with open(f"{task.path}/status") as f:
                status = f.read()
        except OSError:
            continue
        count = int(status.split("voluntary_ctxt_switches:", 1)[1].split()[0])
        out[name] = out.get(name, 0) + count
    return out


def rates(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    """Per second between two :func:`wakeups_by_thread` readings, largest first (kinds
    under 1 a second left out)."""
    per_s = {k: round((v - before.get(k, 0)) / seconds, 1) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in per_s.items() if v >= 1), key=lambda kv: -kv[1]))


class ThreadWindow:
    """The CPU (s) and wake-ups (a second) of each kind of thread of ``pid`` from its
    making to :meth:`end`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu, self._woke = cpu_by_thread(pid), wakeups_by_thread(pid)
        self._t0 = time.monotonic()

    def end(self) -> tuple[dict[str, float], dict[str, float]]:
        """(:func:`cpu_delta`, :func:`rates` of the wake-ups) over the window."""
        seconds = time.monotonic() - self._t0
        return (cpu_delta(self._cpu, cpu_by_thread(self.pid)),
                rates(self._woke, wakeups_by_thread(self.pid), seconds))


def wakeups_note(got: dict[str, Any]) -> str:
    """How often the process's threads woke (the largest four kinds), per second."""
    woke = got.get("threads_wakeups_per_s") or {}
    if not woke:
        return ""
    top = ", ".join(f"{k} {v:.0f}" for k, v in list(woke.items())[:4])
    return f"; woke {sum(woke.values()):.0f} times a second ({top})"

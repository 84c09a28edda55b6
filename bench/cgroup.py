"""A child cgroup of the cgroup v1 ``cpu`` controller with a CFS quota: a slow CPU.

The quota is given as a share of one core over a short period (10 ms by default), so a
process in the group runs like one on a slower CPU instead of being frozen for most of
every 100 ms (the kernel's default period). The group gets a high weight
(:data:`SHARES`), so the machine's other work does not take from the quota.

Needs root and the v1 ``cpu`` hierarchy at ``/sys/fs/cgroup/cpu`` (its root is
read-only here: only a child takes a quota); where either is missing, :class:`CpuQuota`
raises :class:`~bench.report.Skipped` saying which.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bench.report import Skipped

log = logging.getLogger(__name__)

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 10_000
#: The group's weight against the machine's other work (1024 is a plain process's): high,
#: so that other load on a shared machine does not eat into the quota; the quota alone
#: is what limits the group.
SHARES = 65_536


def _why_unavailable(root: Path) -> str | None:
    if not (root / "cpu.cfs_quota_us").exists():
        if Path("/sys/fs/cgroup/cpu.max").exists():
            return ("only the unified cgroup v2 hierarchy is mounted; this benchmark needs "
                    f"the cgroup v1 cpu controller at {root}")
        return f"no cgroup v1 cpu controller at {root} (no cpu.cfs_quota_us)"
    if os.geteuid() != 0:
        return f"creating a child cgroup under {root} needs root"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable (read-only cgroup mount)"
    return None


class CpuQuota:
    """``<root>/<name>``: made on entry, emptied and removed on exit."""

    def __init__(self, name: str, root: Path = CPU_ROOT, period_us: int = PERIOD_US) -> None:
        why = _why_unavailable(root)
        if why is not None:
            raise Skipped(why)
        self.root = root
        self.path = root / name
        self.period_us = period_us
        try:
            self.path.mkdir(exist_ok=True)
            self._write("cpu.cfs_quota_us", "-1")  # before the period: quota <= period
            self._write("cpu.cfs_period_us", str(period_us))
            self._write("cpu.shares", str(SHARES))
        except OSError as exc:
            self._remove()
            raise Skipped(f"cannot set up the cgroup {self.path}: {exc}") from exc
        self.percent: float | None = None

    def __enter__(self) -> CpuQuota:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def set_percent(self, percent: float | None) -> None:
        """Limit the group to ``percent`` of one core (None: no limit)."""
        if percent is None:
            self._write("cpu.cfs_quota_us", "-1")
        else:
            quota = max(1000, round(self.period_us * percent / 100))  # the kernel's minimum
            self._write("cpu.cfs_quota_us", str(quota))
        self.percent = percent

    def add(self, pid: int) -> None:
        """Move a process (all its threads; later ones are born inside) into the group."""
        self._write("cgroup.procs", str(pid))

    def stat(self) -> dict[str, int]:
        """``cpu.stat``: periods, throttled periods and throttled time (ns)."""
        out = {}
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            out[key] = int(value)
        return out

    def pids(self) -> list[int]:
        text = (self.path / "cgroup.procs").read_text()
        return [int(x) for x in text.split()]

    def close(self) -> None:
        for pid in self.pids() if self.path.exists() else []:
            try:
                (self.root / "cgroup.procs").write_text(str(pid))
            except OSError as exc:  # exited meanwhile
                log.debug("moving %d out of %s: %s", pid, self.path, exc)
        self._remove()

    def _remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError as exc:
            if self.path.exists():
                log.warning("could not remove %s: %s", self.path, exc)

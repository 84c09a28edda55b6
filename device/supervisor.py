"""One named task per subsystem, restarted with backoff when it fails.

A subsystem is an async callable that runs until cancelled. If it raises, it is
restarted after an exponential backoff with full jitter (first retry within
``base`` seconds, never more than ``cap``) while every other subsystem keeps running.
A subsystem that has run well for ``stable_after`` seconds starts over from the
shortest delay.

Health probes tell the watchdog whether the subsystems make progress (mic frames
arriving, speaker writes, camera frames, Janus keepalives answered). A probe reports when
its subsystem last made progress, or None while it has nothing to do (the mic is closed);
it fails once that was longer ago than its grace time.

Restarts on request (config changes) are serialized per subsystem, and a burst of them
coalesces: while one restart runs, every further request for the same subsystem waits
for a single follow-up restart, which starts from the config as it is by then. So a
subsystem never runs twice, however many changes arrive at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.base import Emit, null_emit

log = logging.getLogger(__name__)

Runner = Callable[[], Awaitable[None]]
#: A probe: monotonic time of the last progress, or None while idle (nothing to check).
ProgressProbe = Callable[[], float | None]


@dataclass
class Probe:
    name: str
    progress: ProgressProbe
    grace: float
    failing: bool = False
    error: str = ""

    def check(self, now: float) -> dict[str, object]:
        """``{name, ok, active, last_ok_age, grace}`` as of ``now``."""
        try:
            last = self.progress()
            self.error = ""
        except Exception as exc:
            log.debug("health probe %s raised", self.name, exc_info=True)
            last, self.error = 0.0, f"{type(exc).__name__}: {exc}"
        age = None if last is None else max(0.0, now - last)
        ok = not self.error and (age is None or age <= self.grace)
        if ok == self.failing:  # log transitions only, not every watchdog round
            self.failing = not ok
            if ok:
                log.info("health probe %s: failing -> ok", self.name)
            else:
                log.warning("health probe %s: ok -> failing (%s)", self.name,
                            self.error or f"no progress for {age:.1f} s, grace {self.grace:g} s")
        out: dict[str, object] = {
            "name": self.name, "ok": ok, "active": last is not None,
            "last_ok_age": None if age is None else round(age, 2), "grace": self.grace}
        if self.error:
            out["error"] = self.error
        return out


class CounterProgress:
    """A :data:`ProgressProbe` from a counter that grows while things flow.

    ``read()`` returns the counter, or None while idle. The first reading while active
    counts as progress, so the grace time runs from when the subsystem became active.
    """

    def __init__(self, read: Callable[[], int | None]) -> None:
        self._read = read
        self._last: int | None = None
        self._changed_at = 0.0

    def __call__(self) -> float | None:
        value = self._read()
        if value is None:
            self._last = None
            return None
        if value != self._last:
            self._last = value
            self._changed_at = time.monotonic()
        return self._changed_at


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 30.0,
                  rand: Callable[[float, float], float] = random.uniform) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt))."""
    return rand(0.0, min(cap, base * (2 ** min(attempt, 32))))


@dataclass
class Subsystem:
    name: str
    run: Runner
    restarts: int = 0
    failures: int = 0
    last_error: str = ""
    running: bool = False
    started_at: float = 0.0
    delays: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    #: Held while a requested restart stops the old task and starts the new one.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The restart that is waiting for ``lock``: later requests join it.
    queued: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, emit: Emit = null_emit, base: float = 1.0, cap: float = 30.0,
                 stable_after: float = 60.0) -> None:
        self._emit = emit
        self.base = base
        self.cap = cap
        self.stable_after = stable_after
        self.subsystems: dict[str, Subsystem] = {}
        self._probes: dict[str, Probe] = {}
        self._closing = False
        self._restarts: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        states = ", ".join(f"{s.name}={'up' if s.running else 'down'}"
                           for s in self.subsystems.values())
        return f"<Supervisor {states}>"

    def add(self, name: str, run: Runner) -> Subsystem:
        if name in self.subsystems:
            raise ValueError(f"subsystem {name!r} already added")
        sub = Subsystem(name, run)
        self.subsystems[name] = sub
        sub.task = asyncio.create_task(self._keep_running(sub), name=f"subsystem:{name}")
        return sub

    def add_probe(self, name: str, progress: ProgressProbe, grace: float) -> None:
        """A check of progress for the watchdog (e.g. "mic frames arrived lately"): it fails
        when ``progress()`` is more than ``grace`` seconds ago."""
        if grace <= 0:
            raise ValueError(f"probe {name}: grace must be positive")
        self._probes[name] = Probe(name, progress, grace)

    def probes(self) -> list[dict[str, object]]:
        """Every probe as of now: ``{name, ok, active, last_ok_age, grace}``."""
        now = time.monotonic()
        return [probe.check(now) for probe in self._probes.values()]

    def healthy(self) -> bool:
        """True when every probe passes (the watchdog pings only then)."""
        return all(p["ok"] for p in self.probes())

    async def _keep_running(self, sub: Subsystem) -> None:
        attempt = 0
        while not self._closing:
            sub.running = True
            sub.started_at = time.monotonic()
            try:
                await sub.run()
                log.info("subsystem %s finished", sub.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                sub.failures += 1
                sub.last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - sub.started_at >= self.stable_after:
                    attempt = 0
                delay = backoff_delay(attempt, self.base, self.cap)
                attempt += 1
                sub.delays.append(delay)
                log.error("subsystem %s failed (%s); restart %d in %.2f s",
                          sub.name, sub.last_error, attempt, delay, exc_info=exc)
                self._emit("subsystem-failed", {"name": sub.name, "error": sub.last_error,
                                                "retry_in": round(delay, 3)})
            finally:
                sub.running = False
            await asyncio.sleep(delay)
            sub.restarts += 1
            self._emit("subsystem-restarted", {"name": sub.name, "restarts": sub.restarts})

    async def restart(self, name: str) -> None:
        """Cancel and start one subsystem again (after a config change).

        Returns once a restart that began after this call has started the subsystem.
        Concurrent calls for one subsystem are serialized and coalesce into one restart,
        which runs in a task of its own: a caller that gives up does not abandon it.
        """
        sub = self.subsystems[name]
        queued = sub.queued
        if queued is None or queued.done():
            queued = sub.queued = asyncio.create_task(self._restart_when_free(sub),
                                                      name=f"restart:{name}")
            self._restarts.add(queued)
            queued.add_done_callback(self._restarts.discard)
        await asyncio.shield(queued)

    async def _restart_when_free(self, sub: Subsystem) -> None:
        async with sub.lock:
            sub.queued = None  # from here on, a new request needs a restart of its own
            await self._restart_now(sub)

    async def _restart_now(self, sub: Subsystem) -> None:
        if sub.task is not None:
            sub.task.cancel()
            await asyncio.gather(sub.task, return_exceptions=True)
        if self._closing:
            return  # stopping: the subsystem stays down
        sub.restarts += 1
        sub.task = asyncio.create_task(self._keep_running(sub), name=f"subsystem:{sub.name}")
        log.info("subsystem %s restarted on request", sub.name)

    async def stop(self, timeout: float = 2.5) -> None:
        """Cancel every subsystem and wait until they have really exited."""
        self._closing = True
        if self._restarts:  # each ends without starting anything now
            await asyncio.wait(set(self._restarts), timeout=timeout)
        tasks = [s.task for s in self.subsystems.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.error("subsystem task %s did not stop within %.1f s",
                          task.get_name(), timeout)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {s.name: {"running": s.running, "restarts": s.restarts,
                         "failures": s.failures, "last_error": s.last_error}
                for s in self.subsystems.values()}

"""Blocking calls on an event loop's thread, and slow loop callbacks, fail the test.

While :data:`GUARD` is active, ``os.fsync``, ``time.sleep``, ``threading.Thread.join`` and
``ThreadPoolExecutor.shutdown(wait=True)`` note every call made on a thread that is running
an event loop when the call comes from the appliance's code (a frame under :data:`ROOTS`
on the stack). Every loop
callback (a task step, a ``call_soon``) that keeps its thread busy for
:data:`SLOW_CALLBACK` seconds or more is noted too, on any loop. ``tests/conftest.py`` turns
the guard on around each integration test and fails it at teardown with what was noted.

The patches are installed once and cost one check per call while inactive. Every callback
is timed (``asyncio.Handle._run``), as asyncio's debug mode does for its slow-callback
warning, but in the thread's CPU time rather than wall time: on a loaded 2-core machine the
scheduler alone can hold a thread off its CPU for 100 ms and more, and that is not the
callback's doing. Waiting in a blocking call uses no CPU; the patched calls above catch
those. Time the garbage collector spends inside a callback is not counted either (a full
collection in a test process full of objects is the test runner's, not the callback's), nor
are steps of a test's own task (a coroutine defined under ``tests/``: checking a recording
in the test body is not the appliance's work). Debug mode itself stays off: its coroutine
origin tracking slows the media tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Code whose blocking calls count: the appliance's packages. (A test that blocks its own
#: loop, e.g. to see the watchdog stop, is not the appliance blocking.)
ROOTS: list[str] = [str(REPO / name) + os.sep for name in ("device", "drivers", "services")]
#: A callback that runs this long holds up everything else on its loop. 20 ms would
#: flake on 2 cores with SRTP on the loop.
SLOW_CALLBACK = 0.1
#: (file, function) of calls not counted: none. Add one only with the reason beside it.
KNOWN: set[tuple[str, str]] = set()

_SELF = str(Path(__file__).resolve())
_TESTS = str(REPO / "tests") + os.sep


class LoopGuard:
    def __init__(self) -> None:
        self.active = False
        self.blocking: list[str] = []
        self.slow: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self.blocking.clear()
            self.slow.clear()
            self.active = True

    def stop(self) -> list[str]:
        """End the watch; the problems seen since :meth:`start`."""
        with self._lock:
            self.active = False
            return [*self.blocking, *self.slow]

    def blocked(self, what: str) -> None:
        if not self.active:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop's thread: blocking is what threads are for
        if _the_tests_own_call(sys._getframe(2)):
            return
        where = _our_frames(sys._getframe(2))
        if where and tuple(where[0].split(":")[0:1] + where[0].split()[1:2]) not in KNOWN:
            with self._lock:
                self.blocking.append(f"{what} on the event loop's thread "
                                     f"({threading.current_thread().name}), from "
                                     + " <- ".join(where))

    def took(self, handle: asyncio.Handle, cpu: float, wall: float) -> None:
        if self.active and not _a_test_step(handle):
            with self._lock:
                self.slow.append(f"a loop callback used {cpu * 1000:.0f} ms of CPU (over "
                                 f"{SLOW_CALLBACK * 1000:.0f} ms; {wall * 1000:.0f} ms wall): "
                                 f"{_describe(handle)}")


GUARD = LoopGuard()


def _our_frames(frame: FrameType | None, limit: int = 4) -> list[str]:
    out: list[str] = []
    while frame is not None and len(out) < limit:
        name = frame.f_code.co_filename
        if name != _SELF and name.startswith(tuple(ROOTS)):
            out.append(f"{os.path.relpath(name, REPO)}:{frame.f_lineno} "
                       f"{frame.f_code.co_name}")
        frame = frame.f_back
    return out


def _the_tests_own_call(frame: FrameType | None) -> bool:
    """True when a test's code called the appliance's blocking function itself (setting
    up, e.g. saving the config a test starts from), not by awaiting the appliance: the
    outermost appliance frame below the test's frame is a plain call, not a coroutine."""
    outermost: FrameType | None = None
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_TESTS) and name != _SELF:
            return outermost is not None and not (
                outermost.f_code.co_flags & inspect.CO_COROUTINE)
        if name.startswith(tuple(ROOTS)):
            outermost = frame
        elif "asyncio" in name:
            return False  # reached the loop: the appliance's own task or callback
        frame = frame.f_back
    return False


def _a_test_step(handle: asyncio.Handle) -> bool:
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return False
    code = getattr(owner.get_coro(), "cr_code", None)
    return code is not None and code.co_filename.startswith(_TESTS)


class _GcClock(threading.local):
    """CPU seconds this thread spent in the garbage collector so far."""

    total = 0.0
    started = 0.0


_gc_clock = _GcClock()


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_clock.started = time.thread_time()
    else:
        _gc_clock.total += time.thread_time() - _gc_clock.started


def _describe(handle: asyncio.Handle) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None)
        where = f" ({os.path.relpath(code.co_filename, REPO)}:{code.co_firstlineno})" \
            if code is not None else ""
        return f"task {owner.get_name()!r} {getattr(coro, '__qualname__', coro)}{where}"
    return repr(handle)


_installed = False


def install() -> None:
    """Patch the blocking calls and the loop's callback runner (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True

    fsync = os.fsync

    def guarded_fsync(fd: Any) -> None:
        GUARD.blocked("os.fsync()")
        fsync(fd)

    sleep = time.sleep

    def guarded_sleep(seconds: float) -> None:
        GUARD.blocked(f"time.sleep({seconds!r})")
        sleep(seconds)

    join = threading.Thread.join

    def guarded_join(self: threading.Thread, timeout: float | None = None) -> None:
        GUARD.blocked(f"Thread.join() of {self.name!r}")
        join(self, timeout)

    shutdown = concurrent.futures.ThreadPoolExecutor.shutdown

    def guarded_shutdown(self: concurrent.futures.ThreadPoolExecutor, wait: bool = True, *,
                         cancel_futures: bool = False) -> None:
        if wait:
            GUARD.blocked("ThreadPoolExecutor.shutdown(wait=True)")
        shutdown(self, wait, cancel_futures=cancel_futures)

    run = asyncio.Handle._run

    def timed_run(self: asyncio.Handle) -> None:
        wall, cpu, gc_cpu = time.perf_counter(), time.thread_time(), _gc_clock.total
        run(self)
        wall = time.perf_counter() - wall
        if wall >= SLOW_CALLBACK:
            cpu = time.thread_time() - cpu - (_gc_clock.total - gc_cpu)
            if cpu >= SLOW_CALLBACK:
                GUARD.took(self, cpu, wall)

    gc.callbacks.append(_on_gc)
    os.fsync = guarded_fsync
    time.sleep = guarded_sleep
    threading.Thread.join = guarded_join  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.shutdown = guarded_shutdown  # type: ignore[method-assign]
    asyncio.Handle._run = timed_run  # type: ignore[method-assign]

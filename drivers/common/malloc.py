"""Give the C heap's free memory back to the system (glibc's ``malloc_trim``).

Joining a room imports and builds a great deal (aiortc, PyAV, the peer connections, the
codecs) and frees much of what that took; glibc keeps freed memory inside its arenas,
counted in the process's RSS, and returns only what lies at the top of its main heap.
``malloc_trim(0)`` also releases the free pages in the middle of every arena. Where the
C library has no ``malloc_trim`` (not glibc), :func:`trim` does nothing.

A stay in a room that ended leaves its peer connections, transports, codecs and the
room's own objects in reference cycles. Python's collector frees those only in a full
collection, which a box in a room may not run for many minutes (it runs when objects that
survived two collections pile up), so each rejoin kept the last stay's memory, native
included, until then. :class:`Reclaimer` collects it once the stay is over, and trims.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

_libc: Any = None


def libc_function(name: str) -> Any:
    """The C library's function ``name`` (errno kept for ``ctypes.get_errno``), None where
    there is no such library or function."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = False
    return getattr(_libc, name, None) if _libc else None


def _malloc_trim() -> Any:
    return libc_function("malloc_trim")


def rss_bytes() -> int:
    """This process's resident set (0 where ``/proc`` does not tell)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def trim() -> bool:
    """Release the heap's free pages to the system; False where that is not possible."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


async def _trim_in_thread() -> float | None:
    """:func:`trim` in a thread (it walks every arena): the ms it took, None where the C
    library cannot."""
    t0 = time.monotonic()
    return (time.monotonic() - t0) * 1000 if await asyncio.to_thread(trim) else None


async def trim_later(delay: float, why: str) -> None:
    """After ``delay`` s, :func:`trim` in a thread and log what it gave back."""
    await asyncio.sleep(delay)
    before = rss_bytes()
    took_ms = await _trim_in_thread()
    if took_ms is not None:
        log.info("memory: %.1f MB given back to the system %s (malloc_trim, %.0f ms)",
                 (before - rss_bytes()) / 1e6, why, took_ms)


def freeze_imported() -> None:
    """Take every object alive now out of the collector's way for good: called once the
    appliance's modules (and once the room's) are imported, it leaves the modules' code,
    classes and tables (most of the process's objects) out of every later full
    collection, which then walks only what the box has made since. A collection first,
    so no garbage is kept with them."""
    gc.collect()
    gc.freeze()


#: How long after a stay ends its objects are collected: its transports' last callbacks
#: have run by then.
RECLAIM_AFTER_S = 1.0


class Reclaimer:
    """Collects what a finished stay left (a full collection, on the loop: finalizers that
    close codecs and transports run where they belong), then trims the heap in a thread.
    A full collection holds the interpreter for a moment (4-6 ms here with the imported
    modules frozen, :func:`freeze_imported`, 30 ms without; several times that on a Pi's
    core), so it runs when a stay ends, not while the room's audio flows."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.collected = 0  # objects freed, over every run

    def __repr__(self) -> str:
        pending = self._task is not None and not self._task.done()
        return f"<Reclaimer collected={self.collected} pending={pending}>"

    def soon(self, why: str) -> None:
        """Collect and trim :data:`RECLAIM_AFTER_S` from now (a run already due covers
        this one too)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(why),
                                                                name="memory:reclaim")

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self, why: str) -> None:
        await asyncio.sleep(RECLAIM_AFTER_S)
        before = rss_bytes()
        t0 = time.monotonic()
        found = gc.collect()
        self.collected += found
        collect_ms = (time.monotonic() - t0) * 1000
        trim_ms = await _trim_in_thread()
        log.info("memory: %d objects collected %s (%.0f ms)%s; %.1f MB given back to the "
                 "system", found, why, collect_ms,
                 "" if trim_ms is None else f", malloc_trim {trim_ms:.0f} ms",
                 (before - rss_bytes()) / 1e6)

"""Give the C heap's free memory back to the system (glibc's ``malloc_trim``).

Joining a room imports and builds a great deal (aiortc, PyAV, the peer connections, the
codecs) and frees much of what that took; glibc keeps freed memory inside its arenas,
counted in the process's RSS, and returns only what lies at the top of its main heap.
``malloc_trim(0)`` also releases the free pages in the middle of every arena. Where the
C library has no ``malloc_trim`` (not glibc), :func:`trim` does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

_libc: Any = None


def _malloc_trim() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _libc = False
    return getattr(_libc, "malloc_trim", None) if _libc else None


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


async def trim_later(delay: float, why: str) -> None:
    """After ``delay`` s, :func:`trim` in a thread (it walks every arena) and log what it
    gave back."""
    await asyncio.sleep(delay)
    before = rss_bytes()
    t0 = time.monotonic()
    if await asyncio.to_thread(trim):
        log.info("memory: %.1f MB given back to the system %s (malloc_trim, %.0f ms)",
                 (before - rss_bytes()) / 1e6, why, (time.monotonic() - t0) * 1000)

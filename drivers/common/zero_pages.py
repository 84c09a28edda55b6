"""Give back the pages of a buffer a library has just zeroed and not used yet.

libvpx's VP8 encoder sizes its token buffer for the worst frame it could ever be given
(every coefficient of every block coded: 7.4 MB at 640x480, 22 MB at 1280x720) and
zeroes all of it when it opens, so all of it is resident from the start; a real frame
writes a small part of it (about 1 MB at 640x480 and 1 Mbit/s). Private anonymous pages
given back with ``MADV_DONTNEED`` read as zeros again when next touched, which is what
the zeroed buffer held: the library sees the same memory, and only the pages it writes
come back.

:func:`new_ranges` says which address ranges a call mapped (glibc serves an allocation
at or above its mmap threshold with a mapping of its own; ``MALLOC_MMAP_THRESHOLD_`` in
the unit keeps that threshold fixed, so it does so every time, not only until the first
such buffer is freed). :func:`give_back_zeroed` takes the one new range of the expected
size, checks that what lies between its first and last page is all zeros, and gives
those pages back. Anything else (no such range, a byte that is not zero, no ``/proc``,
not Linux) leaves memory as it was.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drivers.common.malloc import libc_function

log = logging.getLogger(__name__)

PAGE = mmap.PAGESIZE
MADV_DONTNEED = 4
#: A new range may be this much longer than the buffer: malloc's header and the page
#: the buffer's end falls in.
SLACK = 2 * PAGE

Range = tuple[int, int]


def anonymous_ranges() -> list[Range]:
    """(start, end) of this process's private writable anonymous mappings, in order."""
    ranges: list[Range] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 5 and fields[1] == "rw-p":  # no path: anonymous
                    start, _, end = fields[0].partition("-")
                    ranges.append((int(start, 16), int(end, 16)))
    except (OSError, ValueError):
        return []
    return sorted(ranges)


def subtract(after: list[Range], before: list[Range]) -> list[Range]:
    """The parts of ``after`` that no range of ``before`` covers (both sorted)."""
    out: list[Range] = []
    for start, end in after:
        at = start
        for b_start, b_end in before:
            if b_end <= at or b_start >= end:
                continue
            if b_start > at:
                out.append((at, b_start))
            at = max(at, b_end)
            if at >= end:
                break
        if at < end:
            out.append((at, end))
    return out


@contextmanager
def new_ranges() -> Iterator[list[Range]]:
    """Fills the list it gives with the anonymous address ranges mapped inside the block
    (a new mapping the kernel merged with a neighbour counts only for its new part)."""
    before = anonymous_ranges()
    found: list[Range] = []
    yield found
    if before:
        found.extend(subtract(anonymous_ranges(), before))


def _madvise() -> Any:
    fn = libc_function("madvise")
    if fn is not None:
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        fn.restype = ctypes.c_int
    return fn


def all_zero(start: int, length: int) -> bool:
    """Whether the ``length`` bytes at ``start`` (this process's memory) are all zero."""
    import numpy as np

    words = np.frombuffer(memoryview((ctypes.c_char * length).from_address(start)),
                          dtype=np.uint64)
    return not words.any()


def give_back_zeroed(ranges: list[Range], size: int, what: str) -> int:
    """Give back the pages of the one range in ``ranges`` that holds a ``size``-byte buffer
    (``size`` to ``size`` + :data:`SLACK` long), when all of it but its first and last
    page is zeros; the bytes given back (0 when none was)."""
    fits = [(s, e) for s, e in ranges if size <= e - s <= size + SLACK]
    if len(fits) != 1 or size < 4 * PAGE:
        log.debug("%s: no single new range of %d bytes among %s", what, size, ranges)
        return 0
    start, end = fits[0]
    inner_start, inner_end = start + PAGE, end - PAGE  # malloc's header; the buffer's end
    length = inner_end - inner_start
    if not all_zero(inner_start, length):
        log.debug("%s: the new %d-byte range is not all zeros; left as it is", what, size)
        return 0
    madvise = _madvise()
    if madvise is None or madvise(inner_start, length, MADV_DONTNEED) != 0:
        log.debug("%s: madvise failed (%s)", what, os.strerror(ctypes.get_errno()))
        return 0
    return length

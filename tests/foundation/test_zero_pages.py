"""Giving back the pages of a freshly zeroed buffer (drivers/common/zero_pages.py), on
real mappings of this process: what was zero reads zero again, is writable, and is no
longer resident; anything else is left as it was."""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from drivers.common import zero_pages
from drivers.common.zero_pages import PAGE, give_back_zeroed, new_ranges, subtract

SIZE = 64 * PAGE


def resident_pages(start: int, length: int = SIZE) -> int:
    """How many pages of ``length`` bytes at ``start`` are resident (``mincore``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pages = length // PAGE
    vec = (ctypes.c_ubyte * pages)()
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    assert libc.mincore(start, length, vec) == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec)


@contextmanager
def zeroed_mapping(size: int = SIZE) -> Iterator[tuple[mmap.mmap, int, list[tuple[int, int]]]]:
    """A fresh private anonymous mapping (as malloc makes), touched with zeros as
    ``vpx_calloc`` does (memset), and
    the ranges :func:`new_ranges` saw appear."""
    with new_ranges() as found:
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf = (ctypes.c_char * size).from_buffer(m)
    start = ctypes.addressof(buf)
    ctypes.memset(start, 0, size)
    try:
        yield m, start, found
    finally:
        del buf
        m.close()


def test_subtract_leaves_only_what_is_new() -> None:
    assert subtract([(0, 100)], []) == [(0, 100)]
    assert subtract([(0, 100)], [(0, 100)]) == []
    # a new mapping merged below an old one, and one above another
    assert subtract([(0, 100), (200, 300)], [(50, 100), (200, 250)]) == [(0, 50), (250, 300)]
    assert subtract([(0, 100)], [(10, 20), (30, 40)]) == [(0, 10), (20, 30), (40, 100)]


def test_a_zeroed_mapping_is_given_back_and_still_reads_zero() -> None:
    with zeroed_mapping() as (m, start, found):
        assert any(s <= start and start + SIZE <= e for s, e in found), found
        assert resident_pages(start) == SIZE // PAGE
        given = give_back_zeroed([(start, start + SIZE)], SIZE - PAGE, "test")
        assert given == SIZE - 2 * PAGE  # all but its first and last page
        assert resident_pages(start) == 2
        m[10 * PAGE] = 7  # writable: a page comes back when written
        assert resident_pages(start) == 3
        assert m[:10 * PAGE] + m[10 * PAGE + 1:] == bytes(SIZE - 1) and m[10 * PAGE] == 7


def test_a_mapping_with_data_in_it_is_left_alone() -> None:
    with zeroed_mapping() as (m, start, _):
        m[SIZE // 2] = 1
        assert give_back_zeroed([(start, start + SIZE)], SIZE - PAGE, "test") == 0
        assert m[SIZE // 2] == 1 and resident_pages(start) == SIZE // PAGE


@pytest.mark.parametrize("ranges", [[], [(0, 10 * PAGE)], [(0, SIZE), (SIZE * 2, SIZE * 3)]],
                         ids=["none", "too small", "two that fit"])
def test_no_single_range_of_the_size_gives_nothing_back(ranges: list[tuple[int, int]]) -> None:
    assert give_back_zeroed(ranges, SIZE - PAGE, "test") == 0


def test_without_madvise_nothing_is_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zero_pages, "_madvise", lambda: None)
    with zeroed_mapping() as (_, start, _found):
        assert give_back_zeroed([(start, start + SIZE)], SIZE - PAGE, "test") == 0
        assert resident_pages(start) == SIZE // PAGE

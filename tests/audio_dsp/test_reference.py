"""The playout reference ring: addressed by play time, robust to jittery stamps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audio import PlayoutReference

RATE = 1000  # a small rate keeps the arithmetic readable


def ramp(start: int, count: int) -> np.ndarray:
    return (np.arange(start, start + count) % 30000).astype(np.int16)


def read(ref: PlayoutReference, t: float, count: int) -> np.ndarray:
    out = np.full(count, -1, dtype=np.int16)
    ref.read(t, out)
    return out


def test_read_before_anything_played_is_silence() -> None:
    ref = PlayoutReference(RATE, seconds=1.0)
    assert not read(ref, 5.0, 20).any()


def test_reads_what_was_played_at_that_time() -> None:
    ref = PlayoutReference(RATE, seconds=1.0, snap=0.0)
    for k in range(10):
        ref.feed(ramp(k * 20, 20), 10.0 + k * 0.02)
    assert np.array_equal(read(ref, 10.05, 20), ramp(50, 20))
    # Partly before the first sample / after the last: zeros there.
    head = read(ref, 9.99, 20)
    assert not head[:10].any() and np.array_equal(head[10:], ramp(0, 10))
    tail = read(ref, 10.19, 20)
    assert np.array_equal(tail[:10], ramp(190, 10)) and not tail[10:].any()
    assert ref.missing == 1


def test_gap_in_playout_reads_as_silence() -> None:
    ref = PlayoutReference(RATE, seconds=1.0, snap=0.002)
    ref.feed(ramp(0, 20), 1.0)
    ref.feed(ramp(100, 20), 1.1)  # nothing played between 1.02 and 1.1
    assert ref.jumps == 1
    out = read(ref, 1.0, 120)
    assert np.array_equal(out[:20], ramp(0, 20))
    assert not out[20:100].any()
    assert np.array_equal(out[100:], ramp(100, 20))


def test_small_stamp_errors_are_treated_as_contiguous() -> None:
    ref = PlayoutReference(RATE, seconds=1.0, snap=0.003)
    rng = np.random.default_rng(1)
    for k in range(20):
        ref.feed(ramp(k * 20, 20), 2.0 + k * 0.02 + rng.uniform(-0.002, 0.002))
    assert ref.jumps == 0
    assert np.array_equal(read(ref, 2.0, 400), ramp(0, 400))


def test_old_samples_fall_out_of_the_ring() -> None:
    ref = PlayoutReference(RATE, seconds=0.1, snap=0.0)
    for k in range(20):
        ref.feed(ramp(k * 20, 20), k * 0.02)
    assert not read(ref, 0.0, 20).any()
    assert np.array_equal(read(ref, 0.3, 20), ramp(300, 20))


def test_bad_ring_size_is_refused() -> None:
    with pytest.raises(ValueError):
        PlayoutReference(RATE, seconds=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 60)), min_size=1, max_size=25),
       st.integers(0, 500), st.integers(1, 200))
def test_matches_a_plain_model(writes: list[tuple[int, int]], at: int, count: int) -> None:
    """Any sequence of writes (gaps, overlaps, going back) reads like a flat timeline."""
    size = 300
    ref = PlayoutReference(RATE, seconds=size / RATE, snap=0.0)
    model: dict[int, int] = {}
    end: int | None = None
    for start, n in writes:
        data = ramp(start * 7, n)
        ref.feed(data, start / RATE)
        if end is not None and start > end:
            for p in range(end, start):
                model[p] = 0
        for i in range(n):
            model[start + i] = int(data[i])
        end = start + n if end is None else max(end, start + n)
    assert end is not None
    expected = [model.get(p, 0) if end - size <= p < end else 0 for p in range(at, at + count)]
    assert read(ref, at / RATE, count).tolist() == expected

"""What the speaker played, laid out on the monotonic clock, for the echo canceller.

The speaker reports each frame with the time its first sample was played
(``played_at``); the microphone stamps each frame with the time its first sample was
captured (``captured_at``). Both are ``time.monotonic()``, so the played signal can be
written into a ring indexed by absolute sample position (time x rate) and read back for
any capture time. Timestamps that wander by less than ``snap`` seconds from where the
previous frame ended are treated as contiguous, so scheduling jitter in the stamps does
not chop the reference; larger jumps (underruns, device reopens) are followed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from drivers.audio.base import SAMPLE_RATE
from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np

    from services.audio.speexdsp import Int16Array
else:
    np = lazy_module("numpy", globals(), "np")


class PlayoutReference:
    """A ring of recently played samples, addressed by play time. Thread-safe."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, seconds: float = 2.0,
                 snap: float = 0.003) -> None:
        if seconds <= 0 or sample_rate <= 0:
            raise ValueError("reference ring needs a positive rate and length")
        self.sample_rate = sample_rate
        self._size = int(sample_rate * seconds)
        self._ring = np.zeros(self._size, dtype=np.int16)
        self._snap = round(snap * sample_rate)
        self._end: int | None = None  # absolute position just past the newest sample
        self._next_read: int | None = None
        self._lock = threading.Lock()
        self.frames = 0
        self.jumps = 0  # playout timestamps that broke continuity (gaps, overlaps)
        self.missing = 0  # reads that wanted samples not (yet) played

    def _position(self, t: float) -> int:
        return round(t * self.sample_rate)

    def clear(self) -> None:
        with self._lock:
            self._ring[:] = 0
            self._end = None
            self._next_read = None

    def feed(self, samples: bytes | Int16Array, played_at: float) -> None:
        """Record ``samples`` (s16 mono) as played from ``played_at`` on."""
        data = np.frombuffer(samples, dtype=np.int16) if isinstance(samples, bytes) else samples
        count = len(data)
        if count == 0:
            return
        if count > self._size:
            data = data[-self._size:]
            played_at += (count - self._size) / self.sample_rate
            count = self._size
        with self._lock:
            pos = self._position(played_at)
            end = self._end
            if end is not None:
                if abs(pos - end) <= self._snap:
                    pos = end
                else:
                    self.jumps += 1
                    if pos > end:  # nothing was played in between: silence
                        self._zero(end, min(pos, end + self._size))
                # Stamps that went back past the ring must not overwrite newer samples.
                oldest = max(end, pos + count) - self._size
                if pos < oldest:
                    data = data[oldest - pos:]
                    pos, count = oldest, len(data)
                    if len(data) == 0:
                        self.frames += 1
                        return
            self._write(pos, data)
            self._end = pos + count if end is None else max(end, pos + count)
            self.frames += 1

    def _zero(self, start: int, stop: int) -> None:
        if stop - start >= self._size:
            self._ring[:] = 0
            return
        a, b = start % self._size, stop % self._size
        if a < b or stop == start:
            self._ring[a:b] = 0
        else:
            self._ring[a:] = 0
            self._ring[:b] = 0

    def _write(self, pos: int, data: Int16Array) -> None:
        a = pos % self._size
        first = min(len(data), self._size - a)
        self._ring[a:a + first] = data[:first]
        if first < len(data):
            self._ring[:len(data) - first] = data[first:]

    def read(self, captured_at: float, out: Int16Array) -> None:
        """Fill ``out`` with what was played from ``captured_at`` on (zeros where nothing).

        Meant for consecutive frames: a time within the snap tolerance of where the last
        read ended continues from there.
        """
        with self._lock:
            pos = self._position(captured_at)
            expected = self._next_read
            if expected is not None and abs(pos - expected) <= self._snap:
                pos = expected
            self._next_read = pos + len(out)
            if self._copy(pos, out):
                self.missing += 1

    def peek(self, start: float, out: Int16Array) -> None:
        """Like :meth:`read` for any span, leaving the frame-to-frame continuity alone."""
        with self._lock:
            self._copy(self._position(start), out)

    def _copy(self, pos: int, out: Int16Array) -> bool:
        """Copy from ``pos``; True when part of the span has not been played yet."""
        count = len(out)
        end = self._end
        if end is None:
            out[:] = 0
            return True
        lo = max(pos, end - self._size)
        hi = min(pos + count, end)
        if lo >= hi:
            out[:] = 0
            return hi < pos + count
        out[:lo - pos] = 0
        out[hi - pos:] = 0
        a, b = lo % self._size, hi % self._size
        dst = out[lo - pos:hi - pos]
        if a < b:
            dst[:] = self._ring[a:b]
        else:
            split = self._size - a
            dst[:split] = self._ring[a:]
            dst[split:] = self._ring[:b]
        return hi < pos + count

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self.frames, "jumps": self.jumps, "missing": self.missing}

    def __repr__(self) -> str:
        return (f"<PlayoutReference {self._size} samples frames={self.frames} "
                f"jumps={self.jumps} missing={self.missing}>")

"""PlaybackFeed: decoded samples of one playback waiting for one destination.

The decoder thread pushes 48 kHz mono int16 samples; the destination pulls them at its
own pace (the speaker thread for the speaker, the mic track on the event loop for the
room). The feed is bounded: a full feed makes the decoder wait, so a long file or a
stream is never decoded ahead by more than ``capacity`` samples. Pausing makes
:meth:`pull` return None without consuming anything.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from drivers.audio.base import SAMPLE_RATE
from drivers.lazy import lazy_module
from services.audio.chunks import drain_into

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Samples = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")



class PlaybackFeed:
    def __init__(self, capacity: int = SAMPLE_RATE) -> None:
        self._chunks: deque[Samples] = deque()
        self._size = 0
        self._capacity = capacity
        self._cond = threading.Condition()
        self._finished = False  # the decoder has pushed everything
        self._closed = False
        self.paused = False
        self.gain = 1.0
        self.played = 0  # samples handed to the destination

    # -- the decoder's side (a worker thread) --------------------------------------------

    def push(self, samples: Samples) -> bool:
        """Add ``samples``, waiting while the feed is full; False once it was closed."""
        with self._cond:
            while self._size >= self._capacity and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return False
            self._chunks.append(samples)
            self._size += len(samples)
            return True

    def finish(self) -> None:
        """Nothing more will be pushed."""
        with self._cond:
            self._finished = True

    # -- the destination's side ----------------------------------------------------------

    @property
    def drained(self) -> bool:
        """Everything decoded has been played (or the feed was closed)."""
        with self._cond:
            return self._closed or (self._finished and self._size == 0)

    def pull(self, count: int) -> Samples | None:
        """Up to ``count`` samples (zero-padded to ``count`` at the end of the sound), or
        None when paused or nothing waits."""
        with self._cond:
            if self.paused or self._closed or self._size == 0:
                return None
            out = np.zeros(count, np.int16)
            filled = drain_into(self._chunks, out)
            self._size -= filled
            self.played += filled
            self._cond.notify_all()
        if self.gain != 1.0:
            scaled = out * np.float32(self.gain)
            out = np.clip(scaled, -32768, 32767).astype(np.int16)
        return out

    def close(self) -> None:
        """Drop what waits and wake the decoder (idempotent)."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()


def mix_into(base: Samples | None, extra: Samples | None) -> Samples | None:
    """``base + extra``, saturated; either may be None (nothing)."""
    if extra is None:
        return base
    if base is None:
        return extra
    n = min(len(base), len(extra))
    acc = base.astype(np.int32)
    acc[:n] += extra[:n]
    return np.clip(acc, -32768, 32767).astype(np.int16)

"""A queue of sample chunks read from the front: the one way the mixer's playout queue
and a playback's feed hand out a block of samples that spans chunk boundaries."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    np = lazy_module("numpy", globals(), "np")


def drain_into(chunks: deque[npt.NDArray[np.int16]], out: npt.NDArray[np.int16]) -> int:
    """Fill ``out`` from the front of ``chunks``, consuming what it takes (a chunk taken in
    part keeps its rest at the front). Returns how many samples were written: all of
    ``out`` unless the chunks ran out first."""
    filled = 0
    count = len(out)
    while filled < count and chunks:
        chunk = chunks[0]
        take = min(count - filled, len(chunk))
        out[filled:filled + take] = chunk[:take]
        filled += take
        if take == len(chunk):
            chunks.popleft()
        else:
            chunks[0] = chunk[take:]
    return filled

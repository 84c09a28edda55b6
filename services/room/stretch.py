"""Time-stretching of decoded speech by whole pitch periods (WSOLA-like overlap-add).

The jitter buffer uses it to move its delay without gaps: :func:`accelerate` removes
one period of a block, :func:`decelerate` repeats one. The period is where the block
best matches itself (normalised autocorrelation on a 4x decimated copy), so on voiced
speech and tones the cut is inaudible; the join is a linear cross-fade over the period.
A quiet block (below ``QUIET_DBFS``) is stretched by a fixed amount without asking
for a match, which is where stretching is least audible.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Samples = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")

#: Shortest and longest period searched, in ms (400 Hz down to 100 Hz voices).
MIN_PERIOD_MS = 2.5
MAX_PERIOD_MS = 10.0
#: A block this quiet is stretched without looking for a period.
QUIET_DBFS = -45.0
QUIET_PERIOD_MS = 5.0
_DECIMATE = 4


def _level_dbfs(x: npt.NDArray[np.float32]) -> float:
    power = float(np.dot(x, x)) / max(1, len(x))
    return 10 * math.log10(power / (32768.0 * 32768.0)) if power > 0 else -math.inf


def find_period(block: Samples, rate: int) -> tuple[int, float]:
    """The lag (samples) at which ``block`` best repeats, and how well (-1..1).

    A quiet block reports ``QUIET_PERIOD_MS`` and a match of 1. A block shorter than
    two of the longest periods searched reports (0, 0).
    """
    x = block.astype(np.float32)
    lo = int(rate * MIN_PERIOD_MS / 1000)
    hi = int(rate * MAX_PERIOD_MS / 1000)
    if len(x) < 2 * hi:
        hi = len(x) // 2
        if hi < lo:
            return 0, 0.0
    if _level_dbfs(x) < QUIET_DBFS:
        return min(hi, int(rate * QUIET_PERIOD_MS / 1000)), 1.0
    # Coarse search on a decimated copy (a mean over each group: a cheap low-pass).
    d = _DECIMATE
    n = len(x) // d
    xd = x[: n * d].reshape(n, d).mean(axis=1)
    dlo, dhi = max(1, lo // d), hi // d
    width = dhi  # compare one longest period's worth
    if n < dhi + width:
        width = n - dhi
    head = xd[:width]
    windows = np.lib.stride_tricks.sliding_window_view(xd, width)[dlo:dhi + 1]
    num = windows @ head
    energy = np.einsum("ij,ij->i", windows, windows) * float(np.dot(head, head))
    score = num / np.sqrt(np.maximum(energy, 1e-9))
    best = int(np.argmax(score))
    lag = (best + dlo) * d
    # Refine at full rate around the coarse lag.
    span = range(max(lo, lag - d), min(hi, lag + d) + 1)
    ref = x[: hi]
    best_lag, best_score = lag, -1.0
    for cand in span:
        seg = x[cand: cand + hi]
        if len(seg) < hi:
            continue
        den = math.sqrt(float(np.dot(ref, ref)) * float(np.dot(seg, seg))) or 1e-9
        s = float(np.dot(ref, seg)) / den
        if s > best_score:
            best_lag, best_score = cand, s
    return best_lag, best_score


def _fade(length: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    down = np.linspace(1.0, 0.0, length, dtype=np.float32)
    return down, down[::-1]


def accelerate(block: Samples, period: int) -> Samples:
    """``block`` shortened by ``period`` samples: its first two periods become one."""
    if not 0 < period <= len(block) // 2:
        raise ValueError(f"cannot remove {period} samples from a block of {len(block)}")
    down, up = _fade(period)
    first = block[:period].astype(np.float32)
    second = block[period: 2 * period].astype(np.float32)
    joined = np.rint(first * down + second * up).astype(np.int16)
    return np.concatenate((joined, block[2 * period:]))


def decelerate(block: Samples, period: int) -> Samples:
    """``block`` lengthened by ``period`` samples: its second period is played twice,
    the second time fading back into the first so the join is continuous."""
    if not 0 < period <= len(block) // 2:
        raise ValueError(f"cannot repeat {period} samples of a block of {len(block)}")
    down, up = _fade(period)
    first = block[:period].astype(np.float32)
    second = block[period: 2 * period].astype(np.float32)
    joined = np.rint(second * down + first * up).astype(np.int16)
    return np.concatenate((block[:period], joined, block[period:]))

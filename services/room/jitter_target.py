"""How long a jitter buffer holds packets: the target delay, from the packets' transits.

Each arrival's transit, ``arrival - timestamp/rate``, is compared with the smallest
transit of the last ``window_s`` seconds; the target is the ``percentile`` of that
lateness plus ``margin_ms``, within ``[min_ms, max_ms]``. When packets came later than
that more than once in :data:`PEAK_HOLD_S` (spikes too rare for the percentile), the
target covers the latest of them too. Arrivals more than :data:`GAP_S` apart (a pause)
start the history afresh. (:class:`services.room.jitter.JitterBuffer` holds one.)
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

#: Arrivals further apart than this start the transit history afresh (a pause).
GAP_S = 0.5
#: How long lateness spikes keep the target up, and how close two are one.
PEAK_HOLD_S = 10.0
SPIKE_MERGE_S = 0.3
#: Spikes raise the target this far at most: beyond, a stall is concealed and caught
#: up with, not waited for all the time.
SPIKE_CAP_MS = 150.0


class DelayTarget:
    def __init__(self, *, rate: int, min_ms: float, max_ms: float, margin_ms: float,
                 percentile: float, window_s: float) -> None:
        if not 0 <= min_ms <= max_ms:
            raise ValueError(f"jitter buffer needs 0 <= min_ms <= max_ms, got {min_ms}, {max_ms}")
        if not 50.0 <= percentile <= 100.0:
            raise ValueError(f"jitter percentile must be 50-100, got {percentile}")
        self.rate = rate
        self.min_ms, self.max_ms, self.margin_ms = min_ms, max_ms, margin_ms
        self.percentile = percentile
        self.window_s = window_s
        # transit history: (arrival, transit); a sliding minimum beside it
        self._transits: deque[tuple[float, float]] = deque()
        self._mins: deque[tuple[float, float]] = deque()
        self._spikes: deque[tuple[float, float]] = deque()  # (arrival, lateness ms)
        self._last_arrival = -math.inf
        self._puts = 0
        self.jitter_ms = 0.0
        self.target_ms = max(min_ms, min(max_ms, margin_ms))

    @property
    def min_transit(self) -> float:
        """The smallest transit of the window (s; 0 before the first arrival)."""
        return self._mins[0][1] if self._mins else 0.0

    def clear(self) -> None:
        """Forget the history (a new stream); the target stays until arrivals move it."""
        self._transits.clear()
        self._mins.clear()
        self._spikes.clear()

    def arrived(self, ts: int, now: float) -> None:
        """A packet with (extended) RTP timestamp ``ts`` arrived at ``now``."""
        if now - self._last_arrival > GAP_S:
            self.clear()
        self._last_arrival = now
        transit = now - ts / self.rate
        self._transits.append((now, transit))
        mins = self._mins
        while mins and mins[-1][1] >= transit:
            mins.pop()
        mins.append((now, transit))
        horizon = now - self.window_s
        while self._transits[0][0] < horizon:
            self._transits.popleft()
        while mins[0][0] < horizon:
            mins.popleft()
        lateness = (transit - mins[0][1]) * 1000
        spikes = self._spikes
        spiked = lateness > self.jitter_ms + self.margin_ms
        if spiked:  # later than the percentile plans for; a burst is one spike
            if spikes and now - spikes[-1][0] < SPIKE_MERGE_S:
                spikes[-1] = (spikes[-1][0], max(spikes[-1][1], lateness))
            else:
                spikes.append((now, lateness))
        while spikes and spikes[0][0] < now - PEAK_HOLD_S:
            spikes.popleft()
        self._puts += 1
        if self._puts % 4 == 0 or len(self._transits) < 8 or spiked:
            values = np.fromiter((t for _, t in self._transits), np.float64,
                                 len(self._transits))
            k = min(len(values) - 1, max(0, math.ceil(self.percentile / 100 * len(values)) - 1))
            self.jitter_ms = (float(np.partition(values, k)[k]) - mins[0][1]) * 1000
            # Spikes more than once lately: plan for the worst of them too (one alone
            # is a stall, not a pattern).
            peak = min(SPIKE_CAP_MS, max(m for _, m in spikes)) if len(spikes) >= 2 else 0.0
            self.target_ms = max(self.min_ms, min(self.max_ms,
                                                  max(self.jitter_ms, peak) + self.margin_ms))

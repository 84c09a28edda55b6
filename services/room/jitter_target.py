"""How long a jitter buffer holds packets: the target delay, from the packets' transits.

Each arrival's transit, ``arrival - timestamp/rate``, is compared with the smallest
transit of the last ``window_s`` seconds; the target is the ``percentile`` of that
lateness plus ``margin_ms``, within ``[min_ms, max_ms]``. When packets came later than
that more than once in :data:`PEAK_HOLD_S` (spikes too rare for the percentile), the
target covers the latest of them too. Arrivals more than :data:`GAP_S` apart (a pause)
start the history afresh. (:class:`services.room.jitter.JitterBuffer` holds one.)

**FEC headroom.** In-band FEC rebuilds a lost packet from the next one, which comes a
packet time later: a receiver playing less than that behind the packets conceals the
loss before the FEC data is there (at the default 10 ms least target a box plays about
17-23 ms behind 20 ms packets, and used none of it under load). So while losses come
whose next packet carries FEC data (LBRR), the target also covers one packet time
(at most :data:`FEC_MAX_FRAME_MS`) on top of the jitter, plus the margin, as Chromium's
NetEq keeps room for its FEC. Only where it pays: it starts after
:data:`FEC_ENTER_LOSSES` losses within :data:`FEC_WINDOW_S` that were concealed before
their next packet came with FEC data for them (*missed*), stays while losses with FEC
data in the next packet keep coming, and ends when none came for :data:`FEC_WINDOW_S`.
A link without loss, a sender without FEC, or a receiver whose next packets are there
in time anyway never gets it (stretching moves the delay a few ms at a time either way).
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
#: FEC headroom: missed FEC losses that start it (within the window), the window (no
#: loss with FEC data for this long ends it), and the longest packet time it covers.
FEC_ENTER_LOSSES = 2
FEC_WINDOW_S = 10.0
FEC_MAX_FRAME_MS = 60.0


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
        self._peak_ms = 0.0  # the worst of the recent spikes, when they repeat
        self._fec_losses: deque[float] = deque()  # when losses with FEC data came
        self._missed: deque[float] = deque()  # ... of them, concealed before it came
        self.fec_headroom_ms = 0.0  # one packet time while FEC pays, else 0
        self.jitter_ms = 0.0

    @property
    def target_ms(self) -> float:
        """The delay to keep (ms)."""
        late = max(self.jitter_ms + self.fec_headroom_ms, self._peak_ms)
        return max(self.min_ms, min(self.max_ms, late + self.margin_ms))

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
            self._peak_ms = (min(SPIKE_CAP_MS, max(m for _, m in spikes))
                             if len(spikes) >= 2 else 0.0)
        if self._fec_losses:
            self._expire_fec(now)

    def lost(self, now: float, frame_ms: float, *, fec: bool, missed: bool) -> None:
        """A packet of ``frame_ms`` was lost at ``now``. ``fec``: the next one carries
        FEC data for it (only those count toward the FEC headroom); ``missed``: it was
        concealed before that next packet came."""
        if not fec:
            return
        self._fec_losses.append(now)
        if missed:
            self._missed.append(now)
        self._expire_fec(now)
        if self.fec_headroom_ms or len(self._missed) >= FEC_ENTER_LOSSES:
            self.fec_headroom_ms = min(FEC_MAX_FRAME_MS, frame_ms)

    def _expire_fec(self, now: float) -> None:
        for losses in (self._fec_losses, self._missed):
            while losses and losses[0] < now - FEC_WINDOW_S:
                losses.popleft()
        if not self._fec_losses:
            self.fec_headroom_ms = 0.0

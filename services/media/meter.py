"""MicMeter: ``mic-level`` events for the page's live meter, from the mic's own frames.

The mic tee hands it each frame's level in the turn of the event loop that hands the
frame on (:meth:`~services.media.audio.MicTee.add_level_listener`); it passes one on
every ``interval`` (5 a second), rounded to 0.1 dB, and ``None`` once when the mic goes
silent or closes. So the meter wakes nothing of its own: a box whose mic is closed is
not woken for it at all, and an open mic's frames already wake the loop.
"""

from __future__ import annotations

import math

from drivers.base import Emit

#: How often the page's mic meter is updated (``mic-level`` events), s.
METER_INTERVAL = 0.2


class MicMeter:
    def __init__(self, emit: Emit, interval: float = METER_INTERVAL) -> None:
        self._emit = emit
        self.interval = interval
        self._shown_at = -math.inf
        #: the level last shown (None: silent or closed)
        self.last: float | None = None

    def __repr__(self) -> str:
        return f"<MicMeter every {self.interval:g} s last={self.last}>"

    def on_level(self, level_dbfs: float, at: float) -> None:
        """A frame that arrived at ``at`` (monotonic) measured ``level_dbfs``."""
        if at - self._shown_at < self.interval:
            return
        self._shown_at = at
        self._show(round(level_dbfs, 1) if math.isfinite(level_dbfs) else None)

    def closed(self) -> None:
        """The mic closed: the meter shows nothing (once), and the next frame at once."""
        self._shown_at = -math.inf
        self._show(None)

    def _show(self, level: float | None) -> None:
        if level is not None or self.last is not None:
            self._emit("mic-level", {"level_dbfs": level})
        self.last = level

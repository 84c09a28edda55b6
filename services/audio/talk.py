"""LocalTalkDetector: whether the box's own mic is talking, at a sensitivity people set.

It watches the mic's level (dBFS of the last frame read) and reports ``talking`` for
``id = "local"`` when the level stays above the threshold, with a short hang-over so a
breath between words does not flicker the level LED. The threshold follows the input
sensitivity: 0 needs -10 dBFS (a loud voice close by), 100 reacts at -70 dBFS.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.base import Emit, null_emit

log = logging.getLogger(__name__)


def threshold_dbfs(sensitivity: int) -> float:
    """The level (dBFS) at which the mic counts as talking, for a sensitivity 0-100."""
    return -10.0 - 0.6 * max(0, min(100, sensitivity))


@dataclass(frozen=True)
class TalkSettings:
    #: 0-100, see :func:`threshold_dbfs`
    sensitivity: int = 50
    #: how often the level is looked at, s: at most this often as the mic's frames come
    #: (:meth:`LocalTalkDetector.on_level`), else by its own timer
    interval: float = 0.05
    #: how often it looks by its own timer while the mic's frames tell it the level (s):
    #: only a mic that stops delivering needs it
    fed_interval: float = 0.5
    #: how often while the mic cannot talk (not in a room, muted, deaf), s; a change of
    #: the room's state, its controls or the mic's open state wakes it at once
    idle_interval: float = 1.0
    #: how long the level must stay below the threshold before talking ends, s
    hangover: float = 0.4


class LocalTalkDetector:
    def __init__(self, settings: TalkSettings, level: Callable[[], float | None],
                 active: Callable[[], bool], emit: Emit = null_emit,
                 gain_db: Callable[[], float] = lambda: 0.0) -> None:
        self.settings = settings
        self._level = level
        #: what the mic's level is moved by before it is compared (the mic volume): the
        #: level that counts is the one the room hears
        self._gain_db = gain_db
        self._active = active
        self._emit = emit
        self.sensitivity = settings.sensitivity
        self.talking = False
        self._last_loud = -math.inf
        #: whether the mic could talk at the last look
        self.can_talk = False
        #: when the mic's last frame brought the level (:meth:`on_level`)
        self._fed_at = -math.inf
        self._looked_at = -math.inf
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<LocalTalkDetector sensitivity={self.sensitivity} talking={self.talking}>"

    @property
    def threshold(self) -> float:
        return threshold_dbfs(self.sensitivity)

    def set_sensitivity(self, value: int) -> dict[str, float | int]:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ValueError(f"sensitivity must be an integer 0-100, got {value!r:.20}")
        if value != self.sensitivity:
            log.info("input sensitivity %d -> %d (%.0f dBFS)", self.sensitivity, value,
                     threshold_dbfs(value))
            self.sensitivity = value
            self._emit("sensitivity", self.to_dict())
        return self.to_dict()

    def to_dict(self) -> dict[str, float | int]:
        return {"sensitivity": self.sensitivity, "threshold_dbfs": round(self.threshold, 1)}

    def step(self, now: float | None = None, level: float | None = None) -> bool:
        """Look at the level once (``level``, or the one the level reader gives);
        returns whether the mic is talking now."""
        now = time.monotonic() if now is None else now
        self._looked_at = now
        self.can_talk = self._active()
        if not self.can_talk:
            level = None
        else:
            level = self._level() if level is None else level
            if level is not None:
                level += self._gain_db()
        loud = level is not None and math.isfinite(level) and level >= self.threshold
        if loud:
            self._last_loud = now
        talking = loud or (self.talking and level is not None
                           and now - self._last_loud < self.settings.hangover)
        if talking != self.talking:
            self.talking = talking
            shown = -100.0 if level is None or not math.isfinite(level) else max(-100.0, level)
            self._emit("talking", {"id": "local", "talking": talking,
                                   "level_dbfs": round(shown, 1)})
        return talking

    def wake(self) -> None:
        """Something that decides whether the mic can talk changed: look again now."""
        self._wake.set()

    def on_level(self, level: float, at: float) -> None:
        """The mic's frame that arrived at ``at`` measured ``level`` (dBFS): looked at
        when the mic can talk and ``interval`` has passed since the last look. Called
        by the mic for every frame, on the loop, in the turn that hands the frame on."""
        self._fed_at = at
        if self.can_talk and at - self._looked_at >= self.settings.interval:
            self.step(at, level)

    async def run(self) -> None:
        """Look while the mic can talk: as its frames come (:meth:`on_level`), and by
        a timer every ``fed_interval`` in case they stop; every ``interval`` while no
        frame came in the last ``fed_interval``; otherwise only when woken (or every
        ``idle_interval``). So in a room the loop wakes for the mic's frames only, and a
        box out of a room is not woken 20 times a second."""
        try:
            while True:
                self._wake.clear()
                self.step()
                if not self.can_talk:
                    timeout = self.settings.idle_interval
                elif time.monotonic() - self._fed_at < self.settings.fed_interval:
                    timeout = self.settings.fed_interval
                else:
                    await asyncio.sleep(self.settings.interval)
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            if self.talking:
                self.talking = False
                self._emit("talking", {"id": "local", "talking": False, "level_dbfs": -100.0})

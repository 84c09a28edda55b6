"""The room's use of the speaker: open only while something can be heard.

In a room the speaker (the device and its thread) plays while there is something to
hear: a member's voice in the mix that can be heard (``voices``) or a local playback on
the speaker (``playbacks``). When the last of them goes, it plays silence for a short
hold (:data:`HOLD_S`, so a member who publishes again or a renegotiation does not click
the device off and on) and then rests. A voice that arrives starts it at once: the mixer
gets the member's track before the first packet can come, and the member's jitter
buffer holds what comes while the device opens. Out of a room it is closed.

A speaker that fails to open is logged, the room goes on, and the next voice that
arrives (or switching the speaker on) tries it again. Opening and closing run one at a
time in tasks of this object, so a change of the mix never waits for the device.

States (``state``, the ``room-speaker`` event): ``idle`` (not in a room), ``resting``
(in a room, nothing to play), ``playing``, ``failed`` (it could not be opened).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from drivers.audio.base import SpeakerSink
from drivers.base import Emit, null_emit

log = logging.getLogger(__name__)

#: Seconds the speaker plays on after the last thing to hear went.
HOLD_S = 3.0

IDLE, RESTING, PLAYING, FAILED = "idle", "resting", "playing", "failed"


class RoomSpeakerUse:
    """Starts ``speaker`` while ``in_room()`` and something wants it, stops it otherwise."""

    def __init__(self, speaker: SpeakerSink | None, in_room: Callable[[], bool],
                 emit: Emit = null_emit, hold_s: float = HOLD_S) -> None:
        self.speaker = speaker
        self._in_room = in_room
        self._emit = emit
        self.hold_s = hold_s
        self._wants: set[str] = set()
        self._quiet_since = time.monotonic()
        self._state = IDLE
        self._playing = False
        self._retry = True
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<RoomSpeakerUse {self._state} wants={sorted(self._wants)} {self.speaker!r}>"

    @property
    def state(self) -> str:
        return self._state

    @property
    def playing(self) -> bool:
        """True while the speaker device is open and its thread plays."""
        return self._playing

    # -- what wants the speaker (on the event loop) -----------------------------------------

    def voices(self, count: int, arrived: bool) -> None:
        """``count`` voices can be heard now (the session decides which: not muted, the
        speaker on); ``arrived``: one came, or a person switched the speaker on, so a
        device that failed is tried again."""
        if arrived:
            self._retry = True  # a speaker that failed is tried again
        self.want("voices", count > 0, force=arrived)

    def want(self, reason: str, active: bool, force: bool = False) -> None:
        """``reason`` (``voices``, ``playbacks``) needs the speaker, or no longer does."""
        had = bool(self._wants)
        if active:
            self._wants.add(reason)
        else:
            self._wants.discard(reason)
        if had and not self._wants:
            self._quiet_since = time.monotonic()
        if force or had != bool(self._wants):
            self.changed()

    def changed(self) -> None:
        """Something the decision depends on changed (the room's state): follow it."""
        if self.speaker is None:
            return
        task = asyncio.get_running_loop().create_task(self.sync(), name="room:speaker")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- opening and closing --------------------------------------------------------------

    async def sync(self, hold: bool = True) -> None:
        """Start or stop the speaker now to match what wants it (``hold``: keep playing
        for the hold after the last thing to hear went, while in the room)."""
        speaker = self.speaker
        if speaker is None:
            return
        async with self._lock:
            self._cancel_timer()
            in_room = self._in_room()
            if in_room and self._wants:
                if not self._playing and (self._state != FAILED or self._retry):
                    await self._start(speaker)
                return
            if self._playing and in_room and hold:
                left = self._quiet_since + self.hold_s - time.monotonic()
                if left > 0:
                    self._timer = asyncio.get_running_loop().call_later(left, self.changed)
                    return
            if self._playing:
                self._playing = False
                try:
                    await speaker.stop()
                except Exception as exc:
                    log.warning("stopping the room speaker: %s", exc)
            if not in_room:
                self._set_state(IDLE)
            elif self._state != FAILED:
                self._set_state(RESTING)

    async def _start(self, speaker: SpeakerSink) -> None:
        self._retry = False
        try:
            await speaker.start()
        except Exception as exc:  # the room goes on; the next voice tries again
            log.error("room speaker failed to open, the room is not played: %s", exc)
            self._set_state(FAILED, str(exc))
            return
        self._playing = True
        self._set_state(PLAYING)

    def _set_state(self, new: str, error: str = "") -> None:
        old = self._state
        if old == new:
            return
        self._state = new
        log.info("room speaker: %s -> %s", old, new)
        self._emit("room-speaker", {"old": old, "new": new,
                                    **({"error": error} if error else {})})

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def stop(self) -> None:
        """Stop the speaker at once, without the hold (leaving the room)."""
        self._wants.clear()
        await self.sync(hold=False)

    async def close(self) -> None:
        """Wait for pending changes; the caller closes the speaker itself."""
        self._cancel_timer()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._cancel_timer()
        self._playing = False

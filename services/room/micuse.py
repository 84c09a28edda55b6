"""The room's use of the microphone: open only while the room sends it.

The room holds the capture device open while it is in the room, publishing and not
deaf; leaving, switching to listener, deaf, a room error or idle release it, and
joining or publishing again reopens it. Muting does not close it (the mic track sends
silence then, and the level meter keeps working). Opening and closing run one at a
time in tasks of this object, so a state change never waits for the device.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from drivers.audio.base import MicSource
from drivers.base import Emit, null_emit

log = logging.getLogger(__name__)


class RoomMicUse:
    """Opens ``mic`` while ``wanted()`` is true, closes it otherwise."""

    def __init__(self, mic: MicSource | None, wanted: Callable[[], bool],
                 emit: Emit = null_emit) -> None:
        self.mic = mic
        self._wanted = wanted
        self._emit = emit
        self._open = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<RoomMicUse open={self._open} {self.mic!r}>"

    @property
    def open(self) -> bool:
        """True while the room holds the mic open (when muted, silence is sent)."""
        return self._open

    def changed(self) -> None:
        """Something ``wanted()`` depends on changed: follow it (in a task of ours)."""
        if self.mic is None:
            return
        task = asyncio.get_running_loop().create_task(self.sync(), name="room:mic")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync(self) -> None:
        """Open or close the mic now to match ``wanted()``."""
        mic = self.mic
        if mic is None:
            return
        async with self._lock:
            want = self._wanted()
            if want == self._open:
                return
            if want:
                try:
                    await mic.start()
                except Exception as exc:  # the room goes on, sending silence
                    log.error("room mic failed to open, sending silence: %s", exc)
                    self._emit("room-mic-error", {"error": str(exc)})
                    return
                self._open = True
                log.info("room mic: closed -> open")
            else:
                self._open = False  # first: the mic track sends silence from now on
                try:
                    await mic.stop()
                except Exception as exc:
                    log.warning("closing the room mic: %s", exc)
                log.info("room mic: open -> closed")

    async def close(self) -> None:
        """Wait for pending changes; the caller closes the mic itself."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._open = False

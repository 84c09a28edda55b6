"""The sim camera's drawing thread: each frame is drawn one tick ahead, off the event loop.

A real camera's frames arrive by DMA and cost the process next to nothing; the sim camera
draws its own (a 460 KB copy and the strip at 640x480, about 0.1-0.3 ms). Done at
:meth:`~drivers.camera.sim.SimCamera.read`, on the loop, that time is taken from
everything else the loop does (the mic's send path first). Here one worker thread draws
the frame the reader will want next as soon as it has the current one, while the loop
sleeps until that tick; the reader then takes a finished frame. The guess is the next
tick at the reader's last step (every tick, or every other one when the reader takes
fewer); a wrong guess is drawn again for the tick wanted and counted in ``redrawn``.

numpy releases the GIL while it copies the planes, so the thread does not hold up the
loop for the copy; the strip (a few dozen microseconds of Python) does take the GIL.
The thread runs nicer than the loop (:data:`DRAW_NICE`, as the video encode threads):
when the CPU is short the audio goes first and a late frame waits for its drawing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from drivers.threadname import name_this_thread

if TYPE_CHECKING:
    import av

#: Draws frame ``number`` stamped ``captured_at`` (``PatternRenderer.render``).
Render = Callable[[int, float], "av.VideoFrame"]

log = logging.getLogger(__name__)

#: The drawing thread's nice value (that of the video encode threads).
DRAW_NICE = 10


def _drawing_thread_setup() -> None:
    name_this_thread()
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid),
                                                 DRAW_NICE))
    except OSError as exc:  # a sandbox that refuses: same priority as the loop
        log.debug("sim camera: cannot lower the drawing thread's priority: %s", exc)


class DrawAhead:
    """Frames made by ``render`` on one thread, the next one before it is asked for."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[av.VideoFrame]] | None = None
        self.drawn = 0
        self.redrawn = 0

    def _submit(self, number: int, captured_at: float) -> Future[av.VideoFrame]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sim-camera",
                                            initializer=_drawing_thread_setup)
        self.drawn += 1
        return self._pool.submit(self._render, number, captured_at)

    async def frame(self, number: int, captured_at: float) -> av.VideoFrame:
        """Frame ``number`` (stamped ``captured_at``): the one drawn ahead if it is that
        one, else drawn now (on the thread)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == number:
            future = ahead[1]
        else:
            if ahead is not None:
                ahead[1].cancel()
                self.redrawn += 1
            future = self._submit(number, captured_at)
        if future.done():  # the usual case: no hop back to the loop
            return future.result()
        return await asyncio.wrap_future(future)

    def draw_ahead(self, number: int, captured_at: float) -> None:
        """Start drawing frame ``number``, expected to be asked for next."""
        if self._ahead is not None:
            self._ahead[1].cancel()
        self._ahead = (number, self._submit(number, captured_at))

    def close(self) -> None:
        """Drop the frame drawn ahead and let the thread end (idempotent)."""
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

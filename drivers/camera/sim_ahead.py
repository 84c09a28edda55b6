"""The sim camera's drawing thread: each frame is drawn just before its tick, off the loop.

A real camera's frames arrive by DMA and cost the process next to nothing; the sim camera
draws its own (a 460 KB copy and the strip at 640x480, about 0.1-0.3 ms). Done at
:meth:`~drivers.camera.sim.SimCamera.read`, on the loop, that time is taken from
everything else the loop does (the mic's send path first). Here one worker thread draws
the frame the reader will want next, :data:`LEAD_S` before its tick (not earlier: a
frame drawn just before it is encoded is still in the CPU's caches), while the loop
sleeps until that tick; the reader then takes a finished frame, without a hop back to
the loop. The guess is the next tick at the reader's last step (every tick, or every
other one when the reader takes fewer); a wrong guess is dropped, the tick wanted is
drawn at once, and ``redrawn`` counts it.

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
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from drivers.threadname import name_this_thread

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

#: Draws frame ``number`` stamped ``captured_at`` (``PatternRenderer.render``).
Render = Callable[[int, float], "av.VideoFrame"]

#: The drawing thread's nice value (that of the video encode threads).
DRAW_NICE = 10
#: How long before its tick a frame guessed ahead is drawn: a few times the drawing's
#: cost, so that it is ready at the tick on a busy CPU.
LEAD_S = 0.004


def _drawing_thread_setup() -> None:
    name_this_thread()
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid),
                                                 DRAW_NICE))
    except OSError as exc:  # a sandbox that refuses: same priority as the loop
        log.debug("sim camera: cannot lower the drawing thread's priority: %s", exc)


class _Ahead:
    """A frame guessed ahead: its tick, its drawing, and the flag that drops it."""

    __slots__ = ("dropped", "future", "number")

    def __init__(self, number: int, future: Future[av.VideoFrame | None],
                 dropped: threading.Event) -> None:
        self.number = number
        self.future = future
        self.dropped = dropped

    def drop(self) -> None:
        self.dropped.set()
        self.future.cancel()


class DrawAhead:
    """Frames made by ``render`` on one thread, the next one before it is asked for."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: _Ahead | None = None
        self.drawn = 0
        self.redrawn = 0

    def _submit(self, number: int, captured_at: float, not_before: float = 0.0,
                dropped: threading.Event | None = None) -> Future[av.VideoFrame | None]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sim-camera",
                                            initializer=_drawing_thread_setup)
        return self._pool.submit(self._draw, number, captured_at, not_before, dropped)

    def _draw(self, number: int, captured_at: float, not_before: float,
              dropped: threading.Event | None) -> av.VideoFrame | None:
        """(On the thread.) The frame, drawn no sooner than ``not_before``; None when
        ``dropped`` is set first (the reader wants another one)."""
        if dropped is not None:
            wait = not_before - time.monotonic()
            if dropped.wait(wait) if wait > 0 else dropped.is_set():
                return None
        self.drawn += 1
        return self._render(number, captured_at)

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.drop()

    async def frame(self, number: int, captured_at: float) -> av.VideoFrame:
        """Frame ``number`` (stamped ``captured_at``): the one guessed ahead if it is that
        one, else drawn now (on the thread)."""
        ahead = self._ahead
        if ahead is not None and ahead.number == number:
            self._ahead = None
            future = ahead.future
        else:
            if ahead is not None:
                self.redrawn += 1
            self._drop_ahead()
            future = self._submit(number, captured_at)
        frame = future.result() if future.done() else await asyncio.wrap_future(future)
        if frame is None:  # only a frame no longer wanted is dropped
            raise RuntimeError(f"sim camera: frame {number} was dropped while read")
        return frame

    def draw_ahead(self, number: int, captured_at: float) -> None:
        """Draw frame ``number`` (due at monotonic ``captured_at``), expected to be asked
        for next, :data:`LEAD_S` before it is due."""
        self._drop_ahead()
        dropped = threading.Event()
        future = self._submit(number, captured_at, captured_at - LEAD_S, dropped)
        self._ahead = _Ahead(number, future, dropped)

    def close(self) -> None:
        """Drop the frame guessed ahead and let the thread end (idempotent)."""
        self._drop_ahead()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

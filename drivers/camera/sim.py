"""The simulated camera: a moving test pattern that carries its frame number and capture time.

Frames are made directly in yuv420p (the encoders' own format, so nothing converts them):
a background one pattern period wider than the frame is rendered once at start, and each
frame is a horizontally shifted window of it copied straight into the frame's planes, plus
the strip of :mod:`drivers.camera.strip` in the top rows. At 640x480 that is about 0.07 ms
of CPU a frame, against ~1.8 ms for converting one rgb24 frame to yuv420p.

Frames are made on demand at :meth:`SimCamera.read`, paced on the monotonic clock as if a
sensor ticked at ``fps``: a reader that keeps up gets every frame at its tick; a reader that
falls behind gets the newest tick at once and the ticks in between count as skipped, exactly
what a real camera with latest-frame hand-over does, but without rendering frames nobody reads.
The drawing itself happens on a worker thread, one tick ahead of the reader
(:mod:`drivers.camera.sim_ahead`), so the event loop only hands frames over, as it does
for a real camera: the encoder sees exactly the frames it saw when they were drawn on
the loop (and the ``ffmpeg`` reference in ``bench/bench_encode.py`` encodes the same ones).

The camera can also be read from a thread (:meth:`SimCamera.read_sync`, what the shared
encoder's frame thread does, :mod:`services.media.pump`): that thread then waits for the
tick and draws the frame itself, and the loop takes no part at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from drivers.camera.base import TIME_BASE, CapturedFrame, pts_for
from drivers.camera.planes import plane_rows
from drivers.camera.sim_ahead import DrawAhead
from drivers.camera.strip import draw_strip, layout_for, stamp_ms

log = logging.getLogger(__name__)

#: Horizontal period of the background pattern and its speed, in luma pixels (both even,
#: so that the half-size chroma planes shift by whole pixels).
PERIOD = 160
SPEED = 4
PATTERNS = ("pattern",)


def _background(width: int, height: int) -> tuple[npt.NDArray[np.uint8], ...]:
    """Y, U, V planes one period wider than the frame, periodic in x with :data:`PERIOD`."""
    x = np.arange(width + PERIOD, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    bands = ((x + y) // 20) % 2  # diagonal bands, 40 px apart
    luma = 56 + bands * 120 + (y * 48) // max(height, 1)
    cx = np.arange((width + PERIOD) // 2, dtype=np.float64)[None, :]
    cy = np.arange(height // 2, dtype=np.float64)[:, None]
    phase = 2 * math.pi * cx / (PERIOD // 2)
    shade = 0.5 + 0.5 * cy / max(height // 2, 1)
    u = 128 + 90 * np.sin(phase) * shade
    v = 128 + 90 * np.cos(phase) * shade
    return (
        np.ascontiguousarray(luma.astype(np.uint8)),
        np.ascontiguousarray(u.astype(np.uint8)),
        np.ascontiguousarray(v.astype(np.uint8)),
    )


class PatternRenderer:
    """Renders frame ``n`` of the test pattern into a new yuv420p ``av.VideoFrame``."""

    def __init__(self, width: int, height: int) -> None:
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError(f"sim camera needs an even width and height, got {width}x{height}")
        self.width = width
        self.height = height
        self.layout = layout_for(width, height)
        if self.layout is None:
            log.warning("sim camera: %dx%d is too small for the frame-number strip",
                        width, height)
        self._y, self._u, self._v = _background(width, height)
        # rows [0, top) of luma hold the strip; chroma under it stays neutral
        self._top = self.layout.height if self.layout else 0
        self._ctop = (self._top + 1) // 2

    def render(self, number: int, captured_at: float) -> av.VideoFrame:
        w, h, top, ctop = self.width, self.height, self._top, self._ctop
        off = (number * SPEED) % PERIOD
        coff = off // 2
        frame = av.VideoFrame(w, h, "yuv420p")
        luma = plane_rows(frame.planes[0], h, w)
        luma[top:] = self._y[top:, off:off + w]
        cw, chh = w // 2, h // 2
        u = plane_rows(frame.planes[1], chh, cw)
        v = plane_rows(frame.planes[2], chh, cw)
        u[ctop:] = self._u[ctop:, coff:coff + cw]
        v[ctop:] = self._v[ctop:, coff:coff + cw]
        if self.layout is not None:
            u[:ctop] = 128
            v[:ctop] = 128
            luma[:top] = 128
            draw_strip(luma, self.layout, number, stamp_ms(captured_at))
        return frame


class SimCamera:
    """A :class:`~drivers.camera.base.VideoSource` that renders a moving test pattern.

    One consumer: :meth:`read` must not be awaited by two tasks at once, nor
    :meth:`read_sync` called by two threads. Frame numbers are the sensor ticks since
    :meth:`start` (0, 1, 2, ...); a gap means skipped ticks.
    """

    #: :meth:`read_sync` may be called from a thread
    reads_in_thread = True

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30,
                 pattern: str = "pattern") -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"unknown sim camera pattern {pattern!r}; known: {PATTERNS}")
        if fps < 1:
            raise ValueError(f"fps must be >= 1, got {fps}")
        self.width = width
        self.height = height
        self.fps = fps
        self.pattern = pattern
        self._renderer = PatternRenderer(width, height)
        self._draw = DrawAhead(self._renderer.render)
        self._halt = threading.Event()
        self._step = 1
        self._started_at: float | None = None
        self._next = 0
        self._delivered = 0
        self._stopped = False
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running" if self._started_at else "idle"
        return (f"<SimCamera {self.width}x{self.height}@{self.fps} {state} "
                f"delivered={self._delivered} skipped={self._next - self._delivered}>")

    @property
    def time_base(self) -> Fraction:
        return TIME_BASE

    async def start(self) -> None:
        if self._stopped:
            raise RuntimeError("a stopped camera cannot be started again")
        if self._started_at is None:
            self._started_at = time.monotonic()
            log.info("sim camera: idle -> running (%dx%d@%d)", self.width, self.height, self.fps)

    async def read(self) -> CapturedFrame:
        """The newest frame not yet returned; waits for the next tick if there is none.

        Raises :class:`EOFError` once stopped.
        """
        if self._stopped:
            raise EOFError("camera stopped")
        t0 = self._started_at
        if t0 is None:
            raise RuntimeError("SimCamera.read() before start()")
        if self._waiter is not None:
            raise RuntimeError("SimCamera.read() awaited by two tasks at once")
        newest = math.floor((time.monotonic() - t0) * self.fps)
        target = max(newest, self._next)
        if target > newest:
            await self._sleep_until(t0 + target / self.fps)
        captured_at = t0 + target / self.fps
        frame = await self._draw.frame(target, captured_at)
        if self._stopped:
            raise EOFError("camera stopped")
        if self._delivered:
            self._step = max(1, target - self._next + 1)
        upcoming = target + self._step
        self._draw.draw_ahead(upcoming, t0 + upcoming / self.fps)
        frame.pts = pts_for(captured_at - t0)
        frame.time_base = TIME_BASE
        self._next = target + 1
        self._delivered += 1
        return CapturedFrame(frame, target, captured_at)

    def read_sync(self, timeout: float) -> CapturedFrame | None:
        """:meth:`read` for a thread, drawn in that thread: waits up to ``timeout`` s for
        the next tick (None when it is further away). Raises :class:`EOFError` once
        stopped."""
        if self._stopped:
            raise EOFError("camera stopped")
        t0 = self._started_at
        if t0 is None:
            raise RuntimeError("SimCamera.read_sync() before start()")
        now = time.monotonic()
        newest = math.floor((now - t0) * self.fps)
        target = max(newest, self._next)
        if target > newest:
            delay = t0 + target / self.fps - now
            if self._halt.wait(min(delay, timeout)):
                raise EOFError("camera stopped")
            if delay > timeout:
                return None
        captured_at = t0 + target / self.fps
        frame = self._renderer.render(target, captured_at)
        frame.pts = pts_for(captured_at - t0)
        frame.time_base = TIME_BASE
        self._next = target + 1
        self._delivered += 1
        return CapturedFrame(frame, target, captured_at)

    async def _sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        # the loop's clock is monotonic too, but not necessarily the same origin
        handle = loop.call_at(loop.time() + (deadline - time.monotonic()), _wake, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    @property
    def stats(self) -> dict[str, int]:
        return {
            "captured": self._next,
            "delivered": self._delivered,
            "skipped": self._next - self._delivered,
            "reopens": 0,
            "redrawn": self._draw.redrawn,
        }

    async def stop(self) -> None:
        """Stop; a pending and every later :meth:`read` raises EOFError. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._halt.set()
        self._draw.close()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(EOFError("camera stopped"))
        log.info("sim camera: running -> stopped (%s)", self.stats)

    async def __aenter__(self) -> SimCamera:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

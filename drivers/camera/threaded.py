"""What every hardware camera backend shares: a capture thread, latest-frame hand-over,
counters, and reopening with backoff after the device is lost.

The newest frame goes to the event loop (:meth:`ThreadedCamera.read`) or, once a thread
has called :meth:`ThreadedCamera.read_sync` (the frame thread of
:mod:`services.media.pump`), straight to that thread: then the loop is not woken for
the camera's frames at all.

A backend implements :meth:`ThreadedCamera._open` (blocking; raises a
:class:`~drivers.errors.DeviceError`), :meth:`ThreadedCamera._pump` (blocking; delivers
frames with :meth:`ThreadedCamera._deliver` until the device fails, the stream ends or
:meth:`ThreadedCamera._halted` turns true) and :meth:`ThreadedCamera._close`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Generic, TypeVar

import av

from drivers.base import Emit, hand_to_loop, null_emit
from drivers.camera.base import TIME_BASE, CapturedFrame, pts_for
from drivers.errors import DeviceError
from drivers.queues import DropOldestQueue

log = logging.getLogger(__name__)

#: Seconds between reopen attempts after the device is lost (the last one repeats).
BACKOFF = (0.5, 1.0, 2.0, 4.0, 5.0)

H = TypeVar("H")  # the backend's open device handle


class ThreadedCamera(Generic[H]):
    """Base of the V4L2 and picamera2 backends (see the module docstring)."""

    kind = "camera"
    #: :meth:`read_sync` serves a reading thread (services.media.pump.reads_in_thread).
    reads_in_thread = True

    def __init__(self, device: str, width: int, height: int, fps: int, *,
                 emit: Emit = null_emit, read_timeout: float = 3.0,
                 backoff: Sequence[float] = BACKOFF) -> None:
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError(f"camera size must be even, got {width}x{height}")
        if fps < 1:
            raise ValueError(f"fps must be >= 1, got {fps}")
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self._emit = emit
        self._read_timeout = read_timeout
        self._backoff = tuple(backoff) or BACKOFF
        self._queue: DropOldestQueue[CapturedFrame] = DropOldestQueue(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._started_at = 0.0
        self._captured = 0
        self._delivered = 0
        self._reopens = 0
        self._stopped = False
        self._warned_convert = False
        # the hand-over to a reading thread, once one has read (see read_sync)
        self._to_thread = False
        self._ready = threading.Condition(threading.Lock())
        self._newest: CapturedFrame | None = None
        self._replaced = 0

    def __repr__(self) -> str:
        state = ("stopped" if self._stopped else "running" if self._thread else "idle")
        return (f"<{type(self).__name__} {self.device} {self.width}x{self.height}@{self.fps} "
                f"{state} captured={self._captured} skipped={self._queue.dropped}>")

    @property
    def time_base(self) -> Fraction:
        return TIME_BASE

    # ------------------------------------------------------------------ backend hooks

    def _open(self) -> H:
        raise NotImplementedError

    def _pump(self, handle: H) -> None:
        raise NotImplementedError

    def _close(self, handle: H) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Open the device (its errors surface here) and start the capture thread."""
        if self._stopped:
            raise RuntimeError("a stopped camera cannot be started again")
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue.bind(self._loop)
        handle = await asyncio.to_thread(self._open)
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(handle,),
                                        name=f"{self.kind} {self.device}", daemon=True)
        self._thread.start()
        log.info("%s %s: idle -> running (%dx%d@%d)", self.kind, self.device, self.width,
                 self.height, self.fps)

    async def read(self) -> CapturedFrame:
        """The newest frame not yet returned; waits for one. EOFError once stopped."""
        if self._stopped:
            raise EOFError("camera stopped")
        if self._thread is None:
            raise RuntimeError(f"{type(self).__name__}.read() before start()")
        item = await self._queue.get()
        self._delivered += 1
        return item

    def read_sync(self, timeout: float) -> CapturedFrame | None:
        """:meth:`read` for a thread: the newest frame not yet returned, waiting up to
        ``timeout`` s (None when none came). From the first call on, frames are handed
        to the reading thread instead of the loop. EOFError once stopped."""
        if self._thread is None and not self._stopped:
            raise RuntimeError(f"{type(self).__name__}.read_sync() before start()")
        self._to_thread = True
        with self._ready:
            if self._newest is None and not self._stopped:
                self._ready.wait(timeout)
            if self._stopped:
                raise EOFError("camera stopped")
            item, self._newest = self._newest, None
        if item is not None:
            self._delivered += 1
        return item

    @property
    def stats(self) -> dict[str, int]:
        return {
            "captured": self._captured,
            "delivered": self._delivered,
            "skipped": self._queue.dropped + self._replaced,
            "reopens": self._reopens,
        }

    async def stop(self) -> None:
        """Stop capturing and wait for the thread to exit. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._halt.set()
        self._queue.close()
        with self._ready:
            self._ready.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self._read_timeout + 2.0)
            if thread.is_alive():
                log.warning("%s %s: capture thread did not exit in time", self.kind,
                            self.device)
        log.info("%s %s: running -> stopped (%s)", self.kind, self.device, self.stats)

    async def __aenter__(self) -> ThreadedCamera[H]:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ------------------------------------------------------------------ capture thread

    def _halted(self) -> bool:
        return self._halt.is_set()

    def _run(self, handle: H) -> None:
        current: H | None = handle
        while current is not None and not self._halt.is_set():
            try:
                self._pump(current)
                reason = "end of stream"
            except Exception as exc:  # any capture error means the device is gone or wedged
                reason = str(exc) or type(exc).__name__
            finally:
                try:
                    self._close(current)
                except Exception as exc:
                    log.debug("%s %s: close failed: %s", self.kind, self.device, exc)
            if self._halt.is_set():
                break
            log.warning("%s %s: running -> lost (%s)", self.kind, self.device, reason)
            self._post_event("device-lost", {"reason": reason})
            current = self._reopen()
            if current is not None:
                self._reopens += 1
                log.info("%s %s: lost -> running (reopen %d)", self.kind, self.device,
                         self._reopens)
                self._post_event("device-restored", {"reopens": self._reopens})

    def _reopen(self) -> H | None:
        """Reopen with backoff until it works or the camera is stopped (then None)."""
        for attempt in itertools.count():
            delay = self._backoff[min(attempt, len(self._backoff) - 1)]
            if self._halt.wait(delay):
                return None
            try:
                return self._open()
            except DeviceError as exc:
                log.debug("%s %s: reopen attempt %d failed: %s", self.kind, self.device,
                          attempt + 1, exc)
        return None  # pragma: no cover - the loop is endless

    def _deliver(self, frame: av.VideoFrame, captured_at: float) -> None:
        """Hand a frame over (from the capture thread): yuv420p at the configured size."""
        if (frame.format.name != "yuv420p" or frame.width != self.width
                or frame.height != self.height):
            if not self._warned_convert:
                self._warned_convert = True
                log.info("%s %s delivers %s %dx%d; converting to yuv420p %dx%d", self.kind,
                         self.device, frame.format.name, frame.width, frame.height,
                         self.width, self.height)
            frame = frame.reformat(self.width, self.height, "yuv420p")
        frame.pts = pts_for(captured_at - self._started_at)
        frame.time_base = TIME_BASE
        index = self._captured
        self._captured += 1
        item = CapturedFrame(frame, index, captured_at)
        if not self._to_thread:
            self._queue.put_threadsafe(item)
            return
        with self._ready:
            if self._newest is not None:
                self._replaced += 1  # the reader was busy: it gets the newest
            self._newest = item
            self._ready.notify()

    def _post_event(self, name: str, data: dict[str, Any]) -> None:
        payload = {"kind": "camera", "device": self.device, **data}
        hand_to_loop(self._loop, self._emit, name, payload)

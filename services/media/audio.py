"""The microphone shared by the room and the outputs.

A microphone can be read by one consumer only. :class:`MicTee` reads it once and hands
every frame to each of its branches; a branch is itself a
:class:`~drivers.audio.base.MicSource`, so the room reads its branch exactly like a mic
(and encodes Opus from it), while
:class:`~services.media.audio_encoder.SharedAudioEncoder` reads another branch and makes
the AAC packets that recordings and the RTMP stream share.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace

from drivers.audio.base import MicSource, PcmFrame
from drivers.audio.pcm import level_dbfs
from drivers.base import Emit, null_emit
from drivers.lazy import import_off_loop
from drivers.queues import DropOldestQueue

log = logging.getLogger(__name__)


class MicBranch:
    """One consumer's view of a shared microphone (a :class:`MicSource`)."""

    def __init__(self, tee: MicTee, name: str, maxsize: int) -> None:
        self.name = name
        self._tee = tee
        self._queue: DropOldestQueue[PcmFrame] = DropOldestQueue(maxsize)
        self.frames = 0
        self.active = False

    def __repr__(self) -> str:
        return f"<MicBranch {self.name} active={self.active} {self._queue!r}>"

    async def start(self) -> None:
        if not self.active:
            self._queue = DropOldestQueue(self._queue.maxsize)
            self.active = True
            try:
                await self._tee._branch_started(self)
            except BaseException:
                self.active = False  # not a user: the next start tries again
                raise

    def _offer(self, frame: PcmFrame) -> None:
        self._queue.put_nowait(frame)

    def _end(self) -> None:
        self._queue.close()

    async def read(self) -> PcmFrame:
        """The next frame; raises EOFError once this branch (or the mic) stopped."""
        if not self.active:
            raise EOFError(f"mic branch {self.name} is stopped")
        frame = await self._queue.get()
        self.frames += 1
        return frame

    def set_gain(self, percent: int) -> None:
        self._tee.set_gain(percent)

    @property
    def stats(self) -> dict[str, int]:
        return {**self._tee.source_stats, "frames": self.frames, "dropped": self._queue.dropped}

    async def stop(self) -> None:
        if self.active:
            self.active = False
            self._queue.close()
            await self._tee._branch_stopped(self)


class MicTee:
    """Reads one microphone for many users; the capture device is open only while it has one.

    A user is a started branch (it reads frames) or a named holder (:meth:`acquire`: it
    needs the mic open but reads no frames, such as the page's level meter). The device
    opens for the first user and closes when the last one goes; every change of the
    open state is published as a ``mic-open`` event. ``source_factory`` opens the
    microphone (called again after every full stop).
    """

    def __init__(self, source_factory: Callable[[], MicSource], name: str = "mic",
                 emit: Emit = null_emit) -> None:
        self.name = name
        self._factory = source_factory
        self._emit = emit
        self._source: MicSource | None = None
        self._branches: list[MicBranch] = []
        self._holders: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._gain: int | None = None
        self.frames = 0
        #: level of the last frame read from the mic (dBFS; -inf when silent or closed)
        self.level_dbfs = -math.inf
        #: monotonic time the device was last opened / its last frame arrived (0: never)
        self.opened_at = 0.0
        self.last_frame_at = 0.0
        self._level_listeners: list[Callable[[float, float], None]] = []
        self._failed_listeners: list[Callable[[float, float], None]] = []

    def __repr__(self) -> str:
        return f"<MicTee {self.name} open={self.is_open} users={self.users}>"

    @property
    def is_open(self) -> bool:
        """True while the capture device is open."""
        return self._source is not None

    @property
    def source(self) -> MicSource | None:
        """The open microphone (None while closed)."""
        return self._source

    def add_level_listener(self, listener: Callable[[float, float], None]) -> None:
        """Call ``listener(level_dbfs, at)`` on the loop for every frame read (``at``: its
        monotonic arrival time), in the same turn of the loop that hands the frame on, so
        watching the level wakes nothing of its own. A listener that raises is logged
        (once) and still called for the next frames."""
        self._level_listeners.append(listener)

    @property
    def users(self) -> list[str]:
        """Who keeps the mic open: started branches and holders, by name."""
        return sorted({b.name for b in self._branches if b.active} | self._holders)

    def branch(self, name: str, maxsize: int = 25) -> MicBranch:
        """A new consumer (not started); ``maxsize`` frames of 20 ms are buffered at most."""
        branch = MicBranch(self, name, maxsize)
        self._branches.append(branch)
        return branch

    async def acquire(self, name: str) -> None:
        """Keep the mic open for ``name`` until :meth:`release` (no frames are read)."""
        async with self._lock:
            self._holders.add(name)
            await self._open_source(name)

    async def release(self, name: str) -> None:
        """``name`` no longer needs the mic; it closes if nobody else does."""
        async with self._lock:
            self._holders.discard(name)
            if not self.users:
                await self._close_source()

    def set_gain(self, percent: int) -> None:
        self._gain = percent
        if self._source is not None:
            self._source.set_gain(percent)

    @property
    def source_stats(self) -> dict[str, int]:
        return dict(self._source.stats) if self._source is not None else {}

    def last_progress(self) -> float | None:
        """For the watchdog: when the open mic last delivered a frame (or opened); None
        while it is closed, or lost and being reopened by its driver (``device-lost``:
        an unplugged USB mic is the driver's to recover, not a reason to restart)."""
        if self._source is None or getattr(self._source, "lost", False):
            return None
        return max(self.opened_at, self.last_frame_at)

    @property
    def source_factory(self) -> Callable[[], MicSource]:
        """What opens the microphone (at the next open)."""
        return self._factory

    @source_factory.setter
    def source_factory(self, factory: Callable[[], MicSource]) -> None:
        self._factory = factory

    async def switch(self, source_factory: Callable[[], MicSource]) -> bool:
        """Read another microphone from now on, without stopping the branches: the new
        device is opened and started while the old one still delivers, then the old one
        stops. Returns True when a device was open (and so was switched live)."""
        async with self._lock:
            self._factory = source_factory
            old = self._source
            if old is None:
                return False
            new = source_factory()
            await new.start()  # raises (the old mic keeps running) when it cannot open
            if self._gain is not None:
                new.set_gain(self._gain)
            task = self._task
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            self._source = new
            self.opened_at = time.monotonic()
            self._task = asyncio.create_task(self._pump(new), name=f"mic-tee:{self.name}")
        log.info("%s tee: switched %r -> %r", self.name, old, new)
        try:
            await old.stop()
        except Exception as exc:  # a mic that was unplugged may fail to close
            log.warning("%s tee: stopping the previous mic: %s", self.name, exc)
        return True

    async def _branch_started(self, branch: MicBranch) -> None:
        async with self._lock:
            await self._open_source(branch.name)

    async def _open_source(self, user: str) -> None:
        if self._source is not None:
            return
        await import_off_loop("numpy")  # the mic path computes with it
        source = self._factory()
        await source.start()
        if self._gain is not None:
            source.set_gain(self._gain)
        self._source = source
        self.opened_at = time.monotonic()
        self._task = asyncio.create_task(self._pump(source), name=f"mic-tee:{self.name}")
        log.info("%s tee: closed -> open (for %s)", self.name, user)
        self._emit("mic-open", {"open": True, "users": self.users})

    async def _branch_stopped(self, branch: MicBranch) -> None:
        async with self._lock:
            if self.users:
                return
            await self._close_source()

    async def _close_source(self) -> None:
        task, self._task = self._task, None
        source, self._source = self._source, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if source is not None:
            try:
                await source.stop()
            finally:
                log.info("%s tee: open -> closed", self.name)
                self._emit("mic-open", {"open": False, "users": self.users})
        self.level_dbfs = -math.inf

    async def _pump(self, source: MicSource) -> None:
        try:
            while True:
                frame = await source.read()
                self.frames += 1
                self.last_frame_at = time.monotonic()
                level = frame.level_dbfs
                if level is None:
                    level = level_dbfs(frame.samples)
                    frame = replace(frame, level_dbfs=level)
                self.level_dbfs = level
                for branch in self._branches:
                    if branch.active:
                        branch._offer(frame)
                for listener in self._level_listeners:
                    try:
                        listener(level, self.last_frame_at)
                    except Exception:
                        if listener not in self._failed_listeners:  # logged once each
                            self._failed_listeners.append(listener)
                            log.exception("%s tee: level listener %r failed", self.name,
                                          listener)
        except EOFError:
            log.info("%s tee: the microphone stopped", self.name)
            for branch in self._branches:
                branch._end()

    async def close(self) -> None:
        """Stop every branch and holder and the microphone (idempotent)."""
        for branch in self._branches:
            branch.active = False
            branch._end()
        async with self._lock:
            self._holders.clear()
            await self._close_source()

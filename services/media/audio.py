"""The microphone shared by the room and the outputs, and the one AAC encoder for them.

A microphone can be read by one consumer only. :class:`MicTee` reads it once and hands
every frame to each of its branches; a branch is itself a
:class:`~drivers.audio.base.MicSource`, so the room reads its branch exactly like a mic
(and encodes Opus from it), while :class:`SharedAudioEncoder` reads another branch and
makes the AAC packets that recordings and the RTMP stream share.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np

from drivers.audio.base import SAMPLE_RATE, MicSource, PcmFrame
from drivers.audio.pcm import level_dbfs
from drivers.base import Emit, null_emit
from drivers.queues import DropOldestQueue
from services.media.packets import EncodedPacket, PacketFanout, PacketSubscription

log = logging.getLogger(__name__)

#: A gap in the mic's capture times longer than this (a lost 20 ms frame is longer) is
#: filled with silence, up to :data:`MAX_FILL`, so audio stays aligned with video.
GAP_TOLERANCE = 0.012
MAX_FILL = 1.0


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


class SharedAudioEncoder:
    """AAC-LC from one mic branch, fanned out to every output that wants audio."""

    def __init__(self, mic: MicSource, bitrate_kbps: int = 96, name: str = "aac") -> None:
        self.name = name
        self.bitrate_kbps = bitrate_kbps
        self._mic = mic
        self._fanout = PacketFanout()
        self._task: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._codec: Any = None
        self._anchor_time = 0.0
        self._samples_fed = 0
        self.sample_rate = SAMPLE_RATE
        self.extradata: bytes | None = None
        self.frames_in = 0
        self.packets_out = 0
        self.silence_filled = 0

    def __repr__(self) -> str:
        return (f"<SharedAudioEncoder {self.name} running={self.is_running} "
                f"packets={self.packets_out} subscribers={len(self._fanout)}>")

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    def attach(self, sub: PacketSubscription) -> None:
        self._fanout.add(sub)

    def detach(self, sub: PacketSubscription) -> None:
        self._fanout.remove(sub)

    async def start(self) -> None:
        if self.is_running:
            return
        await self._mic.start()
        self._codec = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"aac-{self.name}")
        self._task = asyncio.create_task(self._run(), name=f"encoder:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._mic.stop()
        executor, self._executor = self._executor, None
        if executor is not None:  # waits for the encode in progress: off the event loop
            await asyncio.to_thread(executor.shutdown, True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        try:
            while True:
                try:
                    frame = await self._mic.read()
                except EOFError:
                    log.info("%s: the microphone stopped", self.name)
                    return
                self.frames_in += 1
                for packet in await loop.run_in_executor(executor, self._encode, frame):
                    self.packets_out += 1
                    self._fanout.publish(packet)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s encoder failed", self.name)
            raise

    def _open(self, frame: PcmFrame) -> None:
        import av

        codec: Any = av.CodecContext.create("aac", "w")
        codec.sample_rate = frame.sample_rate
        codec.layout = "mono"
        codec.format = "fltp"
        codec.bit_rate = self.bitrate_kbps * 1000
        codec.time_base = Fraction(1, frame.sample_rate)
        codec.open()
        self._codec = codec
        self.sample_rate = frame.sample_rate
        self.extradata = bytes(codec.extradata or b"")
        self._anchor_time = frame.captured_at
        self._samples_fed = 0

    def _samples(self, frame: PcmFrame) -> np.ndarray[Any, np.dtype[np.float32]]:
        pcm = np.frombuffer(frame.samples, dtype="<i2").astype(np.float32) / 32768.0
        if frame.channels > 1:
            pcm = pcm.reshape(-1, frame.channels).mean(axis=1)
        return pcm

    def _encode(self, frame: PcmFrame) -> list[EncodedPacket]:
        import av

        if self._codec is None or frame.sample_rate != self.sample_rate:
            self._open(frame)
        rate = self.sample_rate
        expected = self._anchor_time + self._samples_fed / rate
        gap = frame.captured_at - expected
        chunks = []
        if gap > MAX_FILL:
            # a long outage: start a new timeline instead of encoding seconds of silence
            self._anchor_time = frame.captured_at - self._samples_fed / rate
        elif gap > GAP_TOLERANCE:
            missing = round(gap * rate)
            self.silence_filled += missing
            chunks.append(np.zeros(missing, dtype=np.float32))
        chunks.append(self._samples(frame))
        out = []
        for pcm in chunks:
            av_frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="fltp",
                                                  layout="mono")
            av_frame.sample_rate = rate
            av_frame.pts = self._samples_fed
            av_frame.time_base = Fraction(1, rate)
            self._samples_fed += pcm.shape[0]
            for packet in self._codec.encode(av_frame):
                pts = int(packet.pts)
                out.append(EncodedPacket("audio", bytes(packet), pts, Fraction(1, rate), True,
                                         self._anchor_time + pts / rate, codec="aac"))
        return out

    @property
    def stats(self) -> dict[str, Any]:
        return {"frames_in": self.frames_in, "packets": self.packets_out,
                "silence_filled_samples": self.silence_filled,
                "subscribers": len(self._fanout)}


"""RemoteAudioMixer: every remote voice, decoded, gained and summed into the speaker.

Each remote audio track gets a reader task that converts what the decoder gives into
48 kHz mono samples and pushes them into that member's :class:`PlayoutBuffer`. One clock
task ticks every 20 ms: it pulls one frame from every buffer (silence from a buffer that
has nothing: a late or lost stream never stalls the mix), applies per-member gain and
mute, sums with clipping and writes the frame to the :class:`SpeakerSink`.

Buffers are bounded and trimmed to a small depth so latency cannot build up. The buffer
is the seam for a smarter playout path: pass ``buffer_factory`` to use an adaptive
jitter buffer instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame, SpeakerSink

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]


class RemoteTrack(Protocol):
    kind: str

    async def recv(self) -> Any: ...


class PlayoutBuffer:
    """A bounded FIFO of 20 ms frames that keeps its depth small.

    Every ``window`` pulls it looks at the smallest depth it had: anything above
    ``cushion`` frames was never needed to bridge a late packet, so it is pure latency
    and the oldest frames are dropped. On an underrun it waits for one frame (primes)
    and plays silence meanwhile. The cushion adapts: an underrun adds a frame to it (up
    to ``max_cushion``), and ``calm_windows`` windows without one take a frame away.
    """

    def __init__(self, max_frames: int = 10, cushion: int = 1, window: int = 25,
                 max_cushion: int = 4, calm_windows: int = 10) -> None:
        self.max_frames = max_frames
        self.base_cushion = cushion
        self.cushion = cushion
        self.max_cushion = max_cushion
        self.calm_windows = calm_windows
        self._calm = 0
        self.window = window
        self._frames: deque[Samples] = deque()
        self._partial: Samples = np.zeros(0, dtype=np.int16)
        self._primed = False
        self._ticks = 0
        self._window_min = max_frames
        self.dropped = 0
        self.underruns = 0
        self.trimmed = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, samples: Samples) -> None:
        data = np.concatenate((self._partial, samples)) if len(self._partial) else samples
        whole = len(data) // FRAME_SAMPLES
        for i in range(whole):
            self._frames.append(data[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
        self._partial = data[whole * FRAME_SAMPLES:]
        while len(self._frames) > self.max_frames:
            self._frames.popleft()
            self.dropped += 1

    def pull(self) -> Samples | None:
        """The next frame, or None (the caller plays silence)."""
        if not self._primed:
            if not self._frames:
                return None
            self._primed = True
            self._ticks, self._window_min = 0, self.max_frames
        if not self._frames:
            self.underruns += 1
            self._primed = False
            self.cushion = min(self.max_cushion, self.cushion + 1)
            self._calm = 0
            return None
        self._window_min = min(self._window_min, len(self._frames))
        self._ticks += 1
        if self._ticks >= self.window:
            self._calm += 1
            if self._calm >= self.calm_windows and self.cushion > self.base_cushion:
                self.cushion -= 1
                self._calm = 0
            excess = self._window_min - self.cushion
            for _ in range(max(0, excess)):
                self._frames.popleft()
                self.trimmed += 1
            self._ticks, self._window_min = 0, self.max_frames
        return self._frames.popleft()

    @property
    def depth_ms(self) -> int:
        return len(self._frames) * 1000 * FRAME_SAMPLES // SAMPLE_RATE


@dataclass
class _Source:
    key: str
    buffer: PlayoutBuffer
    task: asyncio.Task[None] | None = None
    gain: float = 1.0
    muted: bool = False
    frames: int = 0
    level_dbfs: float = -math.inf
    resampler: Any = None
    last_frame_at: float = field(default_factory=time.monotonic)


def to_mono48k(frame: Any, source: _Source) -> Samples:
    """An ``av.AudioFrame`` as 48 kHz mono int16 samples."""
    if frame.sample_rate != SAMPLE_RATE or frame.format.name not in ("s16", "s16p"):
        if source.resampler is None:
            import av

            source.resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        out = [f.to_ndarray().reshape(-1) for f in source.resampler.resample(frame)]
        return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if channels == 1:
        return data.reshape(-1).astype(np.int16, copy=False)
    if frame.format.is_planar:
        return data.mean(axis=0).astype(np.int16)
    return data.reshape(-1, channels).mean(axis=1).astype(np.int16)


class RemoteAudioMixer:
    def __init__(self, sink: SpeakerSink | None,
                 buffer_factory: Callable[[], PlayoutBuffer] = PlayoutBuffer) -> None:
        self.sink = sink
        self._buffer_factory = buffer_factory
        self._sources: dict[str, _Source] = {}
        self._clock: asyncio.Task[None] | None = None
        self.master_gain = 1.0
        self.muted = False
        self.frames_out = 0
        self.late_ticks = 0

    def __repr__(self) -> str:
        state = "running" if self._clock else "stopped"
        return f"<RemoteAudioMixer {state} sources={sorted(self._sources)}>"

    # -- sources ------------------------------------------------------------------------

    def add_track(self, key: str, track: RemoteTrack) -> None:
        """Mix ``track`` under ``key`` (a member id); replaces a previous track of ``key``."""
        old = self._sources.pop(key, None)
        source = _Source(key, self._buffer_factory())
        if old is not None:
            source.gain, source.muted = old.gain, old.muted
            if old.task is not None:
                old.task.cancel()
        source.task = asyncio.create_task(self._read(source, track), name=f"mixer:{key}")
        self._sources[key] = source

    async def remove(self, key: str) -> None:
        source = self._sources.pop(key, None)
        if source is not None and source.task is not None:
            source.task.cancel()
            await asyncio.gather(source.task, return_exceptions=True)

    def keys(self) -> list[str]:
        return list(self._sources)

    def set_gain(self, key: str, gain: float) -> None:
        if key in self._sources:
            self._sources[key].gain = max(0.0, gain)

    def set_muted(self, key: str, muted: bool) -> None:
        if key in self._sources:
            self._sources[key].muted = muted

    def is_muted(self, key: str) -> bool:
        return key in self._sources and self._sources[key].muted

    async def _read(self, source: _Source, track: RemoteTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                samples = to_mono48k(frame, source)
                source.buffer.push(samples)
                source.frames += 1
                source.last_frame_at = time.monotonic()
        except MediaStreamError:
            log.debug("mixer: track of %s ended", source.key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mixer: reading %s failed", source.key)

    # -- the clock ----------------------------------------------------------------------

    def start(self) -> None:
        if self._clock is None:
            self._clock = asyncio.create_task(self._run(), name="mixer:clock")

    async def _run(self) -> None:
        period = FRAME_SAMPLES / SAMPLE_RATE
        next_at = time.monotonic()
        index = 0
        while True:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            elif now - next_at > 0.1:  # we were starved (loaded box): resync, don't burst
                self.late_ticks += 1
                next_at = now
            next_at += period
            frame = self.mix_once(index)
            index += 1
            if self.sink is not None:
                try:
                    self.sink.write(frame)
                except Exception:
                    log.exception("mixer: speaker write failed")

    def mix_once(self, index: int = 0) -> PcmFrame:
        """Pull one 20 ms frame from every source and mix it (also used by tests)."""
        acc = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for source in self._sources.values():
            samples = source.buffer.pull()
            if samples is None:
                continue
            source.level_dbfs = _dbfs(samples)
            if source.muted or source.gain <= 0.0:
                continue
            if source.gain == 1.0:
                acc += samples
            else:
                acc += (samples * source.gain).astype(np.int32)
        if self.muted or self.master_gain <= 0.0:
            acc[:] = 0
        elif self.master_gain != 1.0:
            acc = (acc * self.master_gain).astype(np.int32)
        out = np.clip(acc, -32768, 32767).astype(np.int16)
        self.frames_out += 1
        return PcmFrame(out.tobytes(), time.monotonic(), index)

    def source_stats(self) -> dict[str, dict[str, Any]]:
        return {key: {"frames": s.frames, "depth_ms": s.buffer.depth_ms,
                      "underruns": s.buffer.underruns, "dropped": s.buffer.dropped,
                      "trimmed": s.buffer.trimmed,
                      "level_dbfs": round(s.level_dbfs, 1) if s.level_dbfs > -200 else None,
                      "muted": s.muted}
                for key, s in self._sources.items()}

    async def stop(self) -> None:
        """Stop the clock and every reader (idempotent); the sink stays open."""
        tasks = [s.task for s in self._sources.values() if s.task is not None]
        self._sources.clear()
        if self._clock is not None:
            tasks.append(self._clock)
            self._clock = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _dbfs(samples: Samples) -> float:
    if not len(samples):
        return -math.inf
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf

"""RemoteAudioMixer: every remote voice, decoded, gained and summed into the speaker.

Each remote audio track gets a reader task that converts what the decoder gives into
48 kHz mono samples and pushes them into that member's :class:`PlayoutBuffer`. One clock
task ticks every 20 ms: it pulls one frame from every buffer (silence from a buffer that
has nothing: a late or lost stream never stalls the mix), applies per-member gain and
mute, sums with clipping and writes the frame to the :class:`SpeakerSink`.

Each buffer is an adaptive jitter buffer: about one frame deep on a clean LAN, deeper
while arrivals are jittery, concealing a late frame instead of stopping to refill, and
bounded so latency cannot build up. ``buffer_factory`` swaps in another playout policy.
The mix works in integers, does not mix when no stream has a frame, and measures each
member's level on a thinned-out block every few frames.
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

#: A source's level is measured on every LEVEL_EVERY-th frame, every LEVEL_STEP-th sample.
LEVEL_EVERY = 4
LEVEL_STEP = 4


class RemoteTrack(Protocol):
    kind: str

    async def recv(self) -> Any: ...


class PlayoutBuffer:
    """An adaptive jitter buffer of 20 ms frames for one remote voice.

    It aims to hold ``target`` frames when the clock pulls one (one frame on a clean
    LAN, so a voice waits at most a frame or two). The target grows with the measured
    arrival jitter: each push is compared with the earliest arrival of the last
    second (a packet 45 ms behind it needs 2-3 frames of reserve), and that peak decays
    slowly (``decay`` per push). An underrun adds a frame too, given back after ``calm_pulls``
    pulls without one.

    An underrun never stops playout to refill: the missing frame is concealed (the last
    frame once more, fading out; then silence) and the late frame plays at the next tick.
    A packet more than ``STALL_SECONDS`` late is a stall, not jitter, and does not raise the
    target. Waiting frames above the target that a whole ``window`` never needed are latency: one
    is dropped per window, cross-faded into the next so the cut does not click. At most
    ``max_frames`` wait; beyond that the oldest are dropped.
    """

    def __init__(self, max_frames: int = 10, start_target: int = 1, min_target: int = 1,
                 max_target: int = 5, window: int = 8, calm_pulls: int = 50,
                 decay: float = 0.98, clock: Callable[[], float] = time.monotonic) -> None:
        if not 1 <= min_target <= start_target <= max_target < max_frames:
            raise ValueError("PlayoutBuffer needs 1 <= min_target <= start_target <= "
                             f"max_target < max_frames, got {min_target}, {start_target}, "
                             f"{max_target}, {max_frames}")
        self.max_frames = max_frames
        self.min_target = min_target
        self.max_target = max_target
        self.window = window
        self.calm_pulls = calm_pulls
        self.decay = decay
        self._clock = clock
        self._frames: deque[Samples] = deque()
        self._partial: Samples = _EMPTY
        # jitter: arrival time minus the media time pushed, against its recent minimum
        self._media = 0.0
        self._pushes = 0
        self._history: deque[tuple[int, float]] = deque()
        self._last_push = -math.inf
        self.jitter_peak_s = 0.0
        self._extra = start_target - min_target  # frames added by underruns
        self._calm = 0
        self._ticks = 0
        self._window_min = max_frames
        self._last: Samples | None = None
        self._missing = 0  # consecutive pulls with nothing to play
        self.dropped = 0
        self.underruns = 0
        self.concealed = 0
        self.stalls = 0
        self.trimmed = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def target(self) -> int:
        """Frames the buffer aims to hold when a frame is pulled."""
        jitter = math.ceil(self.jitter_peak_s / FRAME_SECONDS - 0.5)
        return max(self.min_target,
                   min(self.max_target, self.min_target + max(jitter, self._extra)))

    def push(self, samples: Samples) -> None:
        self._measure(len(samples))
        data = np.concatenate((self._partial, samples)) if len(self._partial) else samples
        whole = len(data) // FRAME_SAMPLES
        if whole == 1 and len(data) == FRAME_SAMPLES:
            self._frames.append(data)
        else:
            for i in range(whole):
                self._frames.append(data[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
        self._partial = data[whole * FRAME_SAMPLES:] if len(data) % FRAME_SAMPLES else _EMPTY
        while len(self._frames) > self.max_frames:
            self._frames.popleft()
            self.dropped += 1

    def _measure(self, count: int) -> None:
        now = self._clock()
        if now - self._last_push > GAP_SECONDS:  # first push, or after a pause: start over
            self._media = 0.0
            self._history.clear()
        # How late this push is against the earliest arrival of the last HISTORY pushes
        # (a sliding minimum, so a lasting change of delay or clock drift passes).
        self._pushes += 1
        relative = now - self._media
        history = self._history
        while history and history[-1][1] >= relative:
            history.pop()
        history.append((self._pushes, relative))
        if history[0][0] <= self._pushes - HISTORY:
            history.popleft()
        late = relative - history[0][1]
        if late > STALL_SECONDS:  # a stall no reserve bridges: do not hold latency for it
            self.stalls += 1
            late = 0.0
        self.jitter_peak_s = max(self.jitter_peak_s * self.decay, late)
        self._last_push = now
        self._media += count / SAMPLE_RATE

    def pull(self) -> Samples | None:
        """The next frame, or None (the caller plays silence)."""
        frames = self._frames
        if not frames:
            return self._conceal()
        self._missing = 0
        self._calm += 1
        if self._calm >= self.calm_pulls and self._extra > 0:
            self._extra -= 1
            self._calm = 0
        depth = len(frames)
        if depth < self._window_min:
            self._window_min = depth
        self._ticks += 1
        if self._ticks >= self.window:
            excess = self._window_min - self.target
            self._ticks, self._window_min = 0, self.max_frames
            if excess > 0 and depth >= 2:
                self.trimmed += 1
                out = _crossfade(frames.popleft(), frames.popleft())
                self._last = out
                return out
        out = frames.popleft()
        self._last = out
        return out

    def _conceal(self) -> Samples | None:
        if self._last is None:
            return None  # nothing played yet: nothing is late
        self._missing += 1
        if self._missing > 1:
            return None
        self.underruns += 1
        self._calm = 0
        if self._extra < self.max_target - self.min_target:
            self._extra += 1
        self._window_min = 0
        self.concealed += 1
        return (self._last * _FADE_OUT).astype(np.int16)

    @property
    def depth_ms(self) -> int:
        return len(self._frames) * 1000 * FRAME_SAMPLES // SAMPLE_RATE


FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
#: A stream silent this long starts a new arrival schedule (a pause is not jitter).
GAP_SECONDS = 0.5
#: Pushes (of 20 ms) over which the earliest arrival is the reference for lateness.
HISTORY = 50
#: Later than this is a stall (the sender or this box stopped), not jitter to plan for.
STALL_SECONDS = 0.08
_EMPTY: Samples = np.zeros(0, dtype=np.int16)
_FADE_OUT = np.linspace(1.0, 0.0, FRAME_SAMPLES, dtype=np.float32)
_FADE_IN = _FADE_OUT[::-1].copy()


def _crossfade(first: Samples, second: Samples) -> Samples:
    """One frame that starts as ``first`` and ends as ``second`` (two frames in 20 ms)."""
    return (first * _FADE_OUT + second * _FADE_IN).astype(np.int16)


@dataclass
class _Source:
    key: str
    buffer: PlayoutBuffer
    task: asyncio.Task[None] | None = None
    gain: float = 1.0
    muted: bool = False
    frames: int = 0
    level_dbfs: float = -math.inf
    level_tick: int = LEVEL_EVERY - 1  # the first frame is measured
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
    channels = len(frame.layout.channels)
    count = frame.samples
    if frame.format.is_planar:  # one plane per channel (planes may be padded)
        data = np.stack([np.frombuffer(p, np.int16, count) for p in frame.planes[:channels]])
        if channels == 1:
            return data[0]
        left, right = data[0], data[1]
    else:  # interleaved, read in place (to_ndarray would copy it twice)
        flat = np.frombuffer(frame.planes[0], np.int16, count * channels)
        if channels == 1:
            return flat.copy()
        data = flat.reshape(-1, channels)
        left, right = data[:, 0], data[:, 1]
    if channels == 2:  # the usual case (Opus decodes to stereo): halves in int16
        mono = left >> 1
        mono += right >> 1
        return mono
    both = data if frame.format.is_planar else data.T
    return (both.astype(np.int32).sum(axis=0) // channels).astype(np.int16)


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
        self._acc = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        self._silence = bytes(FRAME_SAMPLES * 2)

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

    @property
    def running(self) -> bool:
        """True while the clock writes to the speaker."""
        return self._clock is not None and not self._clock.done()

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
        acc = self._acc
        single: Samples | None = None
        mixed = 0
        for source in self._sources.values():
            samples = source.buffer.pull()
            if samples is None:
                continue
            source.level_tick += 1
            if source.level_tick >= LEVEL_EVERY:
                source.level_tick = 0
                source.level_dbfs = _dbfs(samples)
            if source.muted or source.gain <= 0.0:
                continue
            if source.gain != 1.0:
                scaled = samples * np.float32(source.gain)
                samples = np.clip(scaled, -32768, 32767, out=scaled).astype(np.int16)
            if mixed == 0:
                single = samples
            elif mixed == 1:
                assert single is not None
                np.add(single, samples, out=acc, dtype=np.int32)
            else:
                np.add(acc, samples, out=acc)
            mixed += 1
        self.frames_out += 1
        now = time.monotonic()
        if mixed == 0 or self.muted or self.master_gain <= 0.0:
            return PcmFrame(self._silence, now, index)
        if mixed == 1:
            assert single is not None
            if self.master_gain == 1.0:
                return PcmFrame(single.tobytes(), now, index)
            np.copyto(acc, single, casting="safe")
        if self.master_gain != 1.0:
            acc = (acc * np.float32(self.master_gain)).astype(np.int32)
        np.clip(acc, -32768, 32767, out=acc)
        return PcmFrame(acc.astype(np.int16).tobytes(), now, index)

    def source_stats(self) -> dict[str, dict[str, Any]]:
        return {key: {"frames": s.frames, "depth_ms": s.buffer.depth_ms,
                      "underruns": s.buffer.underruns, "dropped": s.buffer.dropped,
                      "trimmed": s.buffer.trimmed, "concealed": s.buffer.concealed,
                      "target_ms": s.buffer.target * 20,
                      "jitter_ms": round(s.buffer.jitter_peak_s * 1000, 1),
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
    block = samples[::LEVEL_STEP].astype(np.float32)
    if not len(block):
        return -math.inf
    power = float(np.dot(block, block)) / len(block)
    return 10 * math.log10(power / (32768.0 * 32768.0)) if power > 0 else -math.inf

"""RemoteAudioMixer: every remote voice, buffered, gained and summed for the speaker.

Playout is pulled by the sound card: the speaker's own thread calls :meth:`pull` for
exactly the samples the device wants, when it wants them, so the card's clock drives
everything and a busy event loop makes no gap. Each remote voice has its own
:class:`~services.room.jitter.JitterBuffer`, fed with RTP packets straight from aiortc's
receiver (:func:`services.room.rtc.tap_audio_packets`) on the event loop and pulled on
the speaker thread: it orders, decodes (libopus), conceals and time-stretches. A track
whose receiver could not be tapped is read as decoded frames into a small
:class:`DecodedFeed` instead.

Sources are replaced as a whole tuple (never mutated in place), so the speaker thread
iterates a consistent snapshot without holding up the loop; each buffer has its own
lock. The mix works in integers and measures each member's level on a thinned-out
block every few pulls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame, SpeakerSink
from drivers.lazy import lazy_module
from services.audio.chunks import drain_into
from services.room.jitter import JitterBuffer
from services.room.level_talk import packet_level

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Samples = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)


#: The key of a source that is the server's mix of the whole room (AudioBridge), not
#: one member's voice.
MIX_KEY = "mix"
#: A source's level is measured on every LEVEL_EVERY-th frame, every LEVEL_STEP-th sample.
LEVEL_EVERY = 4
LEVEL_STEP = 4


class RemoteTrack(Protocol):
    kind: str

    async def recv(self) -> Any: ...


class PlayoutSource(Protocol):
    """What the mixer pulls from: ``count`` samples, or None while the voice is quiet."""

    def pull(self, count: int) -> Samples | None: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class DecodedFeed:
    """Decoded frames (from a track aiortc decodes itself) waiting to be played.

    The fallback when a receiver could not be tapped: no reordering or concealment
    (aiortc's own buffer did that), just a bounded FIFO that starts once ``start``
    samples wait and drops the oldest beyond ``limit``.
    """

    def __init__(self, start: int = FRAME_SAMPLES, limit: int = 10 * FRAME_SAMPLES) -> None:
        self._chunks: deque[Samples] = deque()
        self._size = 0
        self._start, self._limit = start, limit
        self._playing = False
        self._lock = threading.Lock()
        self.underruns = 0
        self.dropped = 0

    def push(self, samples: Samples) -> None:
        with self._lock:
            self._chunks.append(samples)
            self._size += len(samples)
            while self._size > self._limit:
                self.dropped += len(self._chunks[0])
                self._size -= len(self._chunks.popleft())

    def pull(self, count: int) -> Samples | None:
        with self._lock:
            if not self._playing and self._size < self._start:
                return None
            if self._size < count:
                self._playing = False
                if self._size:
                    self.underruns += 1
                return None
            self._playing = True
            out = np.empty(count, np.int16)
            drain_into(self._chunks, out)
            self._size -= count
            return out

    def stats(self) -> dict[str, Any]:
        return {"delay_ms": round(self._size * 1000 / SAMPLE_RATE, 1),
                "underruns": self.underruns, "dropped": self.dropped}

    def close(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._size = 0


@dataclass
class _Source:
    key: str
    buffer: PlayoutSource
    task: asyncio.Task[None] | None = None
    tap: Any = None
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


def follow_codec(tap: Any, jitter: JitterBuffer) -> None:
    """Have ``jitter`` decode what ``tap`` carries: the codec it carries now (a G.711 or
    G.722 member), and the next one whenever it changes."""
    from services.audio.narrowband import audio_decoder

    def use(codec: str) -> None:
        try:
            jitter.use_decoder(audio_decoder(codec))
        except ValueError as exc:
            log.warning("mixer: %s; that voice stays silent", exc)
            tap.sink = None

    tap.on_codec = use
    if tap.codec != "opus":
        use(tap.codec)


class RemoteAudioMixer:
    def __init__(self, sink: SpeakerSink | None,
                 buffer_factory: Callable[[], JitterBuffer] = JitterBuffer) -> None:
        self.sink = sink
        self._buffer_factory = buffer_factory
        self._sources: tuple[_Source, ...] = ()
        self._attached: SpeakerSink | None = None
        self._pull_lock = threading.Lock()
        self.master_gain = 1.0
        self.muted = False
        self.frames_out = 0
        #: Told ``(count, arrived)`` on the loop whenever a voice comes or goes (the
        #: room's speaker plays only while there are voices: services/room/speaker_use.py).
        self.on_sources: Callable[[int, bool], None] | None = None

    def __repr__(self) -> str:
        state = "running" if self._attached is not None else "stopped"
        return f"<RemoteAudioMixer {state} sources={sorted(self.keys())}>"

    # -- sources (on the event loop) ----------------------------------------------------

    def _find(self, key: str) -> _Source | None:
        return next((s for s in self._sources if s.key == key), None)

    def add_track(self, key: str, track: RemoteTrack,
                  on_level: Callable[[str, int], None] | None = None) -> None:
        """Mix ``track`` under ``key`` (a member id); replaces a previous track of ``key``.
        ``on_level(key, level)`` is told the audio level of each of its packets: the one
        the packet carries, or for a packet without one, that of the voice last decoded
        from ``key`` (:func:`services.room.level_talk.packet_level`)."""
        from services.room.rtc import packet_tap  # aiortc: loaded with the room

        old = self._find(key)
        tap = packet_tap(track)
        if tap is not None:
            jitter = self._buffer_factory()
            source = _Source(key, jitter, tap=tap)
            follow_codec(tap, jitter)
            tap.on_level = (None if on_level is None
                            else functools.partial(packet_level, source, on_level))
            tap.sink = jitter.put
        else:
            feed = DecodedFeed()
            source = _Source(key, feed)
            source.task = asyncio.create_task(self._read(source, feed, track),
                                              name=f"mixer:{key}")
        if old is not None:
            source.gain, source.muted = old.gain, old.muted
            self._release(old)
        self._sources = (*(s for s in self._sources if s.key != key), source)
        self._sources_changed(arrived=True)

    def _sources_changed(self, arrived: bool) -> None:
        if self.on_sources is not None:
            self.on_sources(len(self._sources), arrived)

    def _release(self, source: _Source) -> None:
        if source.tap is not None and source.tap.sink == getattr(source.buffer, "put", None):
            source.tap.sink = source.tap.on_codec = source.tap.on_level = None
        if source.task is not None:
            source.task.cancel()

    async def remove(self, key: str) -> None:
        source = self._find(key)
        if source is None:
            return
        self._sources = tuple(s for s in self._sources if s.key != key)
        self._sources_changed(arrived=False)
        self._release(source)
        if source.task is not None:
            await asyncio.gather(source.task, return_exceptions=True)
        with self._pull_lock:  # not while the speaker thread is in it
            source.buffer.close()

    def keys(self) -> list[str]:
        return [s.key for s in self._sources]

    def set_gain(self, key: str, gain: float) -> None:
        source = self._find(key)
        if source is not None:
            source.gain = max(0.0, gain)

    def set_muted(self, key: str, muted: bool) -> None:
        source = self._find(key)
        if source is not None:
            source.muted = muted

    def is_muted(self, key: str) -> bool:
        source = self._find(key)
        return source is not None and source.muted

    async def _read(self, source: _Source, feed: DecodedFeed, track: RemoteTrack) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                feed.push(to_mono48k(frame, source))
                source.frames += 1
                source.last_frame_at = time.monotonic()
        except MediaStreamError:
            log.debug("mixer: track of %s ended", source.key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mixer: reading %s failed", source.key)

    # -- playout (on the speaker thread) ------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the speaker pulls the mix."""
        return self._attached is not None

    def start(self) -> None:
        """Let the speaker pull the mix (idempotent)."""
        sink = self.sink
        if sink is self._attached:
            return
        if self._attached is not None:
            self._attached.set_source(None)
        self._attached = sink
        if sink is not None:
            sink.set_source(self.pull)

    def pull(self, count: int = FRAME_SAMPLES, play_at: float | None = None) -> PcmFrame:
        """Mix ``count`` samples from every source (silence when no voice has any: the
        speaker's listeners, such as the echo canceller's reference, see every block)."""
        with self._pull_lock:
            samples = self._mix(count)
        now = time.monotonic()
        self.frames_out += 1
        data = bytes(2 * count) if samples is None else samples.tobytes()
        return PcmFrame(data, now, self.frames_out)

    def mix_once(self, index: int = 0) -> PcmFrame:
        """One 20 ms block (tests)."""
        return self.pull(FRAME_SAMPLES)

    def _mix(self, count: int) -> Samples | None:
        acc: npt.NDArray[np.int32] | None = None
        single: Samples | None = None
        for source in self._sources:
            try:
                samples = source.buffer.pull(count)
            except Exception:
                log.exception("mixer: pulling %s failed", source.key)
                continue
            if samples is None:
                continue
            source.frames += 1
            source.level_tick += 1
            if source.level_tick >= LEVEL_EVERY:
                source.level_tick = 0
                source.level_dbfs = _dbfs(samples)
            if source.muted or source.gain <= 0.0:
                continue
            if source.gain != 1.0:
                scaled = samples * np.float32(source.gain)
                samples = np.clip(scaled, -32768, 32767, out=scaled).astype(np.int16)
            if single is None and acc is None:
                single = samples
            elif acc is None:
                assert single is not None
                acc = np.add(single, samples, dtype=np.int32)
            else:
                np.add(acc, samples, out=acc)
        if (single is None and acc is None) or self.muted or self.master_gain <= 0.0:
            return None
        if acc is None:
            assert single is not None
            if self.master_gain == 1.0:
                return single
            acc = single.astype(np.int32)
        if self.master_gain != 1.0:
            acc = (acc * np.float32(self.master_gain)).astype(np.int32)
        np.clip(acc, -32768, 32767, out=acc)
        return acc.astype(np.int16)

    def source_stats(self) -> dict[str, dict[str, Any]]:
        out = {}
        for s in self._sources:
            stats = s.buffer.stats()
            stats.update(frames=s.frames, muted=s.muted, codec=s.tap.codec if s.tap else None,
                         packets_without_level=s.tap.without_level if s.tap else None,
                         level_dbfs=round(s.level_dbfs, 1) if s.level_dbfs > -200 else None)
            out[s.key] = stats
        return out

    async def stop(self) -> None:
        """Detach from the speaker and drop every source (idempotent); the sink stays open."""
        if self._attached is not None:
            self._attached.set_source(None)
            self._attached = None
        sources, self._sources = self._sources, ()
        if sources:
            self._sources_changed(arrived=False)
        for source in sources:
            self._release(source)
        tasks = [s.task for s in sources if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        with self._pull_lock:
            for source in sources:
                source.buffer.close()


def _dbfs(samples: Samples) -> float:
    block = samples[::LEVEL_STEP].astype(np.float32)
    if not len(block):
        return -math.inf
    power = float(np.dot(block, block)) / len(block)
    return 10 * math.log10(power / (32768.0 * 32768.0)) if power > 0 else -math.inf

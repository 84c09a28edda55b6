"""ALSA microphone and speaker on pyalsaaudio.

Each device has its own thread doing blocking reads or writes. The mic hands 20 ms
frames to the event loop through a :class:`DropOldestQueue`. The speaker pulls from its
source (the room's mixer) one period at a time, when the device has room for it, so the
sound card's clock paces playout; with no source set it plays frames given to ``write``
from a small :class:`FrameBuffer` (2-3 frames). Either way it keeps the device's own
buffer short (``max_delay_ms``), so what it plays stays within a few tens of
milliseconds of what it was given.

Xruns (EPIPE) are recovered in place and counted. Any other I/O error means the device
is gone: it is closed, ``device-lost`` is emitted, and it is reopened with backoff
until it is back (``device-restored``).
"""

from __future__ import annotations

import errno
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from drivers.audio.alsa_device import (
    REOPEN_BACKOFF,
    AlsaStream,
    DeviceParams,
    PcmOpener,
    open_pcm,
)
from drivers.audio.base import MIC_QUEUE_FRAMES, SAMPLE_RATE, PcmFrame
from drivers.audio.pcm import (
    FrameBuffer,
    LinearResampler,
    PlayoutListener,
    PlayoutTaps,
    Rechunker,
    apply_gain,
    decode,
    encode,
    level_dbfs,
    notify_playout,
    to_mono_frame,
)
from drivers.base import Emit, hand_to_loop, null_emit
from drivers.queues import DropOldestQueue

log = logging.getLogger(__name__)


def _agreed(params: DeviceParams | None) -> dict[str, int]:
    """The period and buffer the device agreed to (frames at its rate), once open."""
    if params is None:
        return {}
    return {"period_frames": params.period_size, "buffer_frames": params.buffer_size,
            "rate": params.rate}


class AlsaMic(AlsaStream):
    """A capture device as a :class:`~drivers.audio.base.MicSource`.

    ``rate``/``channels`` are what is asked of the device; whatever it agrees to is
    converted to 48 kHz mono. ``queue_frames`` (20 ms frames) bounds how far the consumer
    may lag before the oldest frames are dropped (:data:`~drivers.audio.base.MIC_QUEUE_MS`).
    """

    capture = True
    kind = "mic"

    def __init__(self, device: str = "default", *, period_size: int = 480,
                 buffer_size: int = 1440, rate: int = SAMPLE_RATE, channels: int = 1,
                 gain: int = 100, queue_frames: int = MIC_QUEUE_FRAMES, emit: Emit = null_emit,
                 backoff: Sequence[float] = REOPEN_BACKOFF,
                 opener: PcmOpener = open_pcm) -> None:
        super().__init__(device, period_size=period_size, buffer_size=buffer_size,
                         rate=rate, channels=channels, volume=gain, emit=emit,
                         backoff=backoff, opener=opener)
        self._queue: DropOldestQueue[PcmFrame] = DropOldestQueue(queue_frames)
        self._dropped_before = 0  # drops counted by queues of earlier runs
        self._queue_closed = False
        self._rechunker = Rechunker()
        self._resampler: LinearResampler | None = None
        self._overruns = 0
        self._unheld = threading.Event()
        self._unheld.set()

    def __repr__(self) -> str:
        state = "lost" if self.lost else ("running" if self._thread else "stopped")
        return (f"<AlsaMic {self.device!r} {state} frames={self.counters['frames']} "
                f"dropped={self.stats['dropped']} overruns={self._overruns}>")

    async def start(self) -> None:
        """Open the device and start capturing (again, after :meth:`stop`)."""
        if self._thread is None and self._queue_closed:
            self._dropped_before += self._queue.dropped
            self._queue = DropOldestQueue(self._queue.maxsize)
            self._queue_closed = False
        await super().start()

    def hold_capture(self, held: bool) -> None:
        """Test hook: while held, the device thread blocks before its next read, as a
        wedged driver would (frames stop; the event loop is not affected). ``stop()``
        lets it go."""
        if held:
            self._unheld.clear()
        else:
            self._unheld.set()

    async def stop(self) -> None:
        self._unheld.set()
        await super().stop()

    async def read(self) -> PcmFrame:
        if self._thread is None and not self._stopping.is_set():
            raise RuntimeError(f"AlsaMic({self.device!r}).read() before start()")
        return await self._queue.get()

    def set_gain(self, percent: int) -> None:
        self._set_level(percent)

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self.counters["frames"],
                "dropped": self._dropped_before + self._queue.dropped,
                "overruns": self._overruns, "reopens": self.counters["reopens"],
                "queued": len(self._queue), **_agreed(self.params)}

    def _on_open(self, params: DeviceParams) -> None:
        self._rechunker.clear()
        self._resampler = (None if params.rate == SAMPLE_RATE
                           else LinearResampler(params.rate, SAMPLE_RATE))

    def _after_stop(self) -> None:
        super()._after_stop()
        self._queue.clear()
        self._queue.close()
        self._queue_closed = True

    def _io(self, pcm: Any) -> None:
        import alsaaudio

        params = self.params
        assert params is not None
        while not self._stopping.is_set():
            self._unheld.wait()
            try:
                count, data = pcm.read()
            except alsaaudio.ALSAAudioError as exc:
                raise self._broken(exc) from exc
            now = time.monotonic()
            if count == -errno.EPIPE:
                # Overrun: pyalsaaudio has already re-prepared the stream.
                self._overruns += 1
                self._rechunker.clear()
                log.debug("mic %s: overrun #%d", self.device, self._overruns)
                continue
            if count <= 0:
                continue
            if self._stopping.is_set():
                break
            # The period's first sample was captured `count` frames before the
            # samples still waiting in the device buffer.
            waiting = pcm.avail()
            waiting = waiting if 0 <= waiting <= params.buffer_size else 0
            first_at = now - (count + waiting) / params.rate
            if params.native:
                mono = data
            else:
                x = decode(data, params.format, params.channels)
                if self._resampler is not None:
                    x = self._resampler.process(x)
                mono = encode(x, "S16_LE", 1)
            for samples, t in self._rechunker.push(mono, first_at):
                index = self.counters["frames"]
                self.counters["frames"] = index + 1
                self._hand_over(PcmFrame(apply_gain(samples, self._gain), t, index))

    def _hand_over(self, frame: PcmFrame) -> None:
        """From the device thread to the queue, on the loop."""
        hand_to_loop(self._loop, self._deliver, frame)

    def _deliver(self, frame: PcmFrame) -> None:
        if not self._stopping.is_set():  # nothing arrives after stop()
            self._queue.put_nowait(frame)


class AlsaSpeaker(PlayoutTaps, AlsaStream):
    """A playback device as a :class:`~drivers.audio.base.SpeakerSink`.

    ``buffer_frames`` is the hand-over buffer (drop oldest when full). Whenever the
    stream (re)starts, ``prefill_frames`` of silence go first so that a frame arriving
    a little late does not underrun at once. Frames that would sit in the device
    buffer beyond ``max_delay_ms`` are skipped (counted as dropped) to keep latency
    bounded when the producer bursts. The device running dry counts as an underrun
    only within a stream: after more than ``idle_s`` without frames it is a new one.
    """

    capture = False
    kind = "speaker"

    def __init__(self, device: str = "default", *, period_size: int = 480,
                 buffer_size: int = 1440, rate: int = SAMPLE_RATE, channels: int = 1,
                 volume: int = 100, buffer_frames: int = 3, prefill_frames: int = 1,
                 max_delay_ms: float = 60.0, idle_s: float = 0.5, emit: Emit = null_emit,
                 backoff: Sequence[float] = REOPEN_BACKOFF,
                 opener: PcmOpener = open_pcm) -> None:
        super().__init__(device, period_size=period_size, buffer_size=buffer_size,
                         rate=rate, channels=channels, volume=volume, emit=emit,
                         backoff=backoff, opener=opener)
        if prefill_frames < 0 or max_delay_ms <= 0:
            raise ValueError("prefill_frames must be >= 0 and max_delay_ms > 0")
        self._buffer = FrameBuffer(buffer_frames)
        self._prefill = prefill_frames
        self._max_delay_s = max_delay_ms / 1000.0
        self._idle_s = idle_s
        self._last_write = -math.inf
        self._resampler: LinearResampler | None = None
        self._listeners: list[PlayoutListener] = []
        self._underruns = 0
        self._late = 0
        self._level = -math.inf

    def __repr__(self) -> str:
        state = "lost" if self.lost else ("running" if self._thread else "stopped")
        return (f"<AlsaSpeaker {self.device!r} {state} frames={self.counters['frames']} "
                f"underruns={self._underruns} level={self._level:.1f} dBFS>")

    def set_volume(self, percent: int) -> None:
        self._set_level(percent)

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self.counters["frames"],
                "dropped": self._buffer.dropped + self._late,
                "underruns": self._underruns, "reopens": self.counters["reopens"],
                "queued": len(self._buffer), **_agreed(self.params)}

    def _on_open(self, params: DeviceParams) -> None:
        self._resampler = (None if params.rate == SAMPLE_RATE
                           else LinearResampler(SAMPLE_RATE, params.rate))

    def _wake(self) -> None:
        self._buffer.wake()

    def _device_bytes(self, mono: bytes, params: DeviceParams) -> bytes:
        if params.native:
            return mono
        x = decode(mono, "S16_LE", 1)
        if self._resampler is not None:
            x = self._resampler.process(x)
        return encode(x, params.format, params.channels)

    def _queued_s(self, pcm: Any, params: DeviceParams) -> float:
        """Seconds of audio waiting in the device buffer (0 if the device cannot say)."""
        avail = pcm.avail()
        if not 0 <= avail <= params.buffer_size:
            return 0.0
        return (params.buffer_size - avail) / params.rate

    def _write(self, pcm: Any, data: bytes) -> int:
        import alsaaudio

        try:
            return int(pcm.write(data))
        except alsaaudio.ALSAAudioError as exc:
            raise self._broken(exc) from exc

    def _io(self, pcm: Any) -> None:
        params = self.params
        assert params is not None
        # Priming (at start, after an underrun) is one period of silence.
        silence = self._device_bytes(
            bytes(2 * max(1, round(params.period_size * SAMPLE_RATE / params.rate))), params)
        while not self._stopping.is_set():
            if self._source is not None:
                self._pull_period(pcm, params, silence)
                continue
            frame = self._buffer.get(timeout=0.1)
            if frame is None or self._stopping.is_set() or self._source is not None:
                continue
            mono = to_mono_frame(frame)
            if self._queued_s(pcm, params) > self._max_delay_s:
                self._late += 1  # the device is too far ahead: keep latency bounded
                continue
            self._play(pcm, params, silence, mono, frame.captured_at)

    def _pull_period(self, pcm: Any, params: DeviceParams, silence: bytes) -> None:
        """One period from the source, when the device has room for it: the device's
        clock paces the pulls. The device buffer is kept under ``max_delay_ms``."""
        source = self._source
        if source is None:
            return
        period_s = params.period_size / params.rate
        room_at = self._queued_s(pcm, params) + period_s - self._max_delay_s
        if room_at > 0 and self._stopping.wait(room_at):  # the device drains meanwhile
            return
        count = max(1, round(params.period_size * SAMPLE_RATE / params.rate))
        now = time.monotonic()
        try:
            frame = source(count, now + self._queued_s(pcm, params))
        except Exception:
            log.exception("speaker %s: its source failed; playing silence", self.device)
            frame = None
        mono = to_mono_frame(frame) if frame is not None else bytes(2 * count)
        self._play(pcm, params, silence, mono, frame.captured_at if frame else now,
                   notify=frame is not None)

    def _play(self, pcm: Any, params: DeviceParams, silence: bytes, mono: bytes,
              captured_at: float, notify: bool = True) -> None:
        """Write one block (48 kHz mono) to the device, recovering an xrun in place."""
        import alsaaudio

        framesize = 2 * params.channels * (2 if params.format != "S16_LE" else 1)
        mono = apply_gain(mono, self._gain)
        data = self._device_bytes(mono, params)
        ran_dry = pcm.state() == alsaaudio.PCM_STATE_XRUN
        for _attempt in range(3):
            if pcm.state() != alsaaudio.PCM_STATE_RUNNING and not all(
                    self._write(pcm, silence) != -errno.EPIPE
                    for _ in range(self._prefill)):
                ran_dry = True  # it was stopped by an underrun; now re-prepared
                continue
            if self._write(pcm, data) != -errno.EPIPE:
                break
            # pyalsaaudio re-prepared the stream; this frame was not written.
            ran_dry = True
        # Running dry after a pause between streams is expected, not an underrun.
        if ran_dry and time.monotonic() - self._last_write <= self._idle_s:
            self._underruns += 1
            log.debug("speaker %s: underrun #%d", self.device, self._underruns)
        now = self._last_write = time.monotonic()
        queued = self._queued_s(pcm, params)
        played_at = now + max(0.0, queued - len(data) / framesize / params.rate)
        if not notify:
            self._level = -math.inf
            return
        index = self.counters["frames"]
        self.counters["frames"] = index + 1
        self._level = level_dbfs(mono)
        if self._listeners:
            notify_playout(self._listeners, PcmFrame(mono, captured_at, index),
                           played_at, self._listener_failed)

    def _listener_failed(self, exc: BaseException) -> None:
        log.warning("speaker %s: playout listener failed: %r", self.device, exc)

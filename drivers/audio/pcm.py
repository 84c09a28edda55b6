"""Sample conversion shared by the audio backends (numpy only, no hardware).

Everything inside the appliance is 48 kHz mono s16le in 20 ms frames; devices are
whatever they are. These helpers turn device samples into that and back: decoding of
the common ALSA sample formats, down/up-mixing, a streaming linear resampler, frame
re-chunking, gain with saturation (never wrap-around), and a level meter.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.audio.base import (
    BYTES_PER_SAMPLE,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    PcmFrame,
    PlayoutSource,
)
from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    FloatArray = npt.NDArray[np.float32]
    Int16Array = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")


FRAME_BYTES = FRAME_SAMPLES * BYTES_PER_SAMPLE
SILENCE_FRAME = bytes(FRAME_BYTES)

#: Sample formats the ALSA backend converts itself (numpy dtype, full-scale value).
FORMATS: dict[str, tuple[str, float]] = {
    "S16_LE": ("<i2", 32768.0),
    "S32_LE": ("<i4", 2147483648.0),
    "S24_LE": ("<i4", 8388608.0),  # 24 bits in the low three bytes of 32
    "FLOAT_LE": ("<f4", 1.0),
}

#: A playout listener: the frame as played (48 kHz mono, after volume) and the
#: ``time.monotonic()`` at which its first sample is expected to leave the speaker.
PlayoutListener = Callable[[PcmFrame, float], None]


def percent_to_gain(percent: int) -> float:
    """Volume 0-100 to an amplitude factor: 0 is mute, 100 is unity, cubic in between.

    The cubic curve is roughly even in loudness (50 % is about -18 dB).
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"volume must be 0-100, got {percent}")
    return (percent / 100.0) ** 3


def saturate_s16(x: FloatArray | npt.NDArray[np.float64]) -> Int16Array:
    """Round float samples in s16 units to int16, clipping instead of wrapping."""
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def apply_gain(samples: bytes, gain: float) -> bytes:
    """s16le ``samples`` scaled by ``gain``; peaks beyond full scale are clipped."""
    if gain == 1.0:
        return samples
    if gain <= 0.0:
        return bytes(len(samples))
    data = np.frombuffer(samples, dtype="<i2").astype(np.float32)
    return saturate_s16(data * np.float32(gain)).astype("<i2").tobytes()


def level_dbfs(samples: bytes) -> float:
    """RMS level of s16le samples in dBFS; ``-inf`` for digital silence."""
    data = np.frombuffer(samples, dtype="<i2")
    if data.size == 0:
        return -math.inf
    f = data.astype(np.float32)
    power = float(np.dot(f, f)) / data.size
    if power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(power / (32768.0 * 32768.0))


def decode(data: bytes, fmt: str, channels: int) -> FloatArray:
    """Interleaved device samples to mono float32 in s16 units (channels averaged)."""
    dtype, full_scale = FORMATS[fmt]
    raw = np.frombuffer(data, dtype=dtype)
    if fmt == "S24_LE":  # sign-extend from bit 23 (the top byte is not always set)
        raw = (raw << 8) >> 8
    if channels > 1:
        usable = raw.size - raw.size % channels
        mono = raw[:usable].reshape(-1, channels).astype(np.float64).mean(axis=1)
    else:
        mono = raw.astype(np.float64)
    return (mono * (32768.0 / full_scale)).astype(np.float32)


def encode(mono: FloatArray, fmt: str, channels: int) -> bytes:
    """Mono float32 in s16 units to interleaved device samples (copied to each channel)."""
    dtype, full_scale = FORMATS[fmt]
    if fmt == "FLOAT_LE":
        out: npt.NDArray[Any] = np.clip(mono / 32768.0, -1.0, 1.0).astype(dtype)
    elif fmt == "S16_LE":
        out = saturate_s16(mono).astype(dtype)
    else:
        scaled = mono.astype(np.float64) * (full_scale / 32768.0)
        out = np.clip(np.rint(scaled), -full_scale, full_scale - 1).astype(dtype)
    if channels > 1:
        out = np.repeat(out, channels)
    return bytes(out.tobytes())


class LinearResampler:
    """Streaming linear-interpolation resampler for mono float32.

    Keeps its phase and the last input sample between calls, so consecutive chunks of
    any size join without clicks. Good enough for speech at the usual device rates.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._step = in_rate / out_rate
        self._pos = 0.0  # position of the next output sample, relative to _last
        self._last: np.float32 | None = None

    def process(self, x: FloatArray) -> FloatArray:
        if self.in_rate == self.out_rate or x.size == 0:
            return x
        if self._last is None:
            buf = x
        else:
            buf = np.concatenate(([self._last], x)).astype(np.float32)
        limit = buf.size - 1  # interpolation needs a right neighbour
        count = max(0, math.ceil((limit - self._pos) / self._step))
        positions = self._pos + self._step * np.arange(count, dtype=np.float64)
        out = np.interp(positions, np.arange(buf.size), buf).astype(np.float32)
        self._pos = self._pos + self._step * count - limit
        self._last = buf[-1]
        return out


class Rechunker:
    """Collects s16le mono samples and cuts them into exact 20 ms frames.

    Tracks the capture time of the oldest pending sample, so each frame is stamped with
    the time of its own first sample.
    """

    def __init__(self, frame_bytes: int = FRAME_BYTES, rate: int = SAMPLE_RATE) -> None:
        self._buf = bytearray()
        self._frame_bytes = frame_bytes
        self._rate = rate
        self._t0 = 0.0

    def push(self, samples: bytes, first_sample_at: float) -> list[tuple[bytes, float]]:
        """Add samples whose first one was captured at ``first_sample_at``."""
        # Re-anchor on every chunk: the device clock is the truth, not our arithmetic.
        self._t0 = first_sample_at - len(self._buf) / BYTES_PER_SAMPLE / self._rate
        self._buf += samples
        out = []
        while len(self._buf) >= self._frame_bytes:
            out.append((bytes(self._buf[: self._frame_bytes]), self._t0))
            del self._buf[: self._frame_bytes]
            self._t0 += self._frame_bytes / BYTES_PER_SAMPLE / self._rate
        return out

    def clear(self) -> None:
        self._buf.clear()


class FrameBuffer:
    """The loop-to-thread hand-over of a speaker: bounded, drops the oldest, never blocks.

    ``put`` runs on the event loop; ``get`` runs on the device thread.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[PcmFrame] = deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: PcmFrame) -> None:
        with self._cond:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(frame)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> PcmFrame | None:
        """The oldest frame, waiting up to ``timeout`` seconds; ``None`` if none came."""
        with self._cond:
            if not self._items and timeout != 0:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def wake(self) -> None:
        """Release a waiting ``get`` (used at stop)."""
        with self._cond:
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()


def to_mono_frame(frame: PcmFrame) -> bytes:
    """A frame's samples as 48 kHz mono s16le (mixes stereo down; other rates resampled)."""
    data = frame.samples
    if frame.channels != 1:
        data = encode(decode(data, "S16_LE", frame.channels), "S16_LE", 1)
    if frame.sample_rate != SAMPLE_RATE:
        rs = LinearResampler(frame.sample_rate, SAMPLE_RATE)
        data = encode(rs.process(decode(data, "S16_LE", 1)), "S16_LE", 1)
    return data


def notify_playout(listeners: list[PlayoutListener], frame: PcmFrame, played_at: float,
                   log_error: Callable[[BaseException], None]) -> None:
    """Call every listener; one that raises is reported and does not stop playout."""
    for listener in listeners:
        try:
            listener(frame, played_at)
        except Exception as exc:
            log_error(exc)


class PlayoutTaps:
    """What the speaker backends share: the source playout is pulled from (or else the
    hand-over buffer ``write`` fills), the playout listeners and the level of what was
    played last. The backend sets ``_buffer``, ``_listeners`` and ``_level`` in its
    ``__init__``."""

    _buffer: FrameBuffer
    _listeners: list[PlayoutListener]
    _level: float
    _source: PlayoutSource | None = None

    def set_source(self, source: PlayoutSource | None) -> None:
        self._source = source
        self._buffer.wake()

    def write(self, frame: PcmFrame) -> None:
        self._buffer.put(frame)

    def add_playout_listener(self, callback: PlayoutListener) -> None:
        """Call ``callback(frame, played_at)`` (on the speaker thread) for every frame
        played: the frame as played (48 kHz mono, after volume) and the monotonic time
        its first sample is expected to be heard (the simulated speaker: the time its
        slot started)."""
        self._listeners = [*self._listeners, callback]

    def remove_playout_listener(self, callback: PlayoutListener) -> None:
        self._listeners = [cb for cb in self._listeners if cb is not callback]

    @property
    def level_dbfs(self) -> float:
        return self._level

"""WAV files for the sim backend: a writer whose header stays valid while it grows,
and a loader that turns any PCM WAV into 48 kHz mono s16le."""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from drivers.audio.base import SAMPLE_RATE
from drivers.audio.pcm import saturate_s16
from drivers.errors import DeviceError, DeviceNotFound
from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np

    from drivers.audio.pcm import FloatArray
else:
    np = lazy_module("numpy", globals(), "np")

HEADER_BYTES = 44
MAX_LOOP_S = 600  # a sim mic clip is held in memory: 10 min at 48 kHz mono is 55 MB


class GrowingWav:
    """A 16-bit PCM WAV written in pieces.

    The RIFF and data sizes in the header are rewritten by :meth:`sync` (the caller
    does it every few hundred milliseconds) and at :meth:`close`, so another process
    can read a consistent file at any time: it sees everything up to the last sync.
    """

    def __init__(self, path: Path, rate: int = SAMPLE_RATE, channels: int = 1) -> None:
        self.path = path
        self.rate = rate
        self.channels = channels
        self.data_bytes = 0
        self._synced = -1
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "wb")  # owned by this object, closed in close()
        try:
            f.write(self._header())
            f.flush()
        except OSError:
            f.close()
            raise
        self._f: BinaryIO | None = f

    def _header(self) -> bytes:
        block = 2 * self.channels
        return (b"RIFF" + struct.pack("<I", 36 + self.data_bytes) + b"WAVE"
                + b"fmt " + struct.pack("<IHHIIHH", 16, 1, self.channels, self.rate,
                                        self.rate * block, block, 16)
                + b"data" + struct.pack("<I", self.data_bytes))

    @property
    def size(self) -> int:
        return HEADER_BYTES + self.data_bytes

    def write(self, samples: bytes) -> None:
        if self._f is None:
            raise ValueError(f"{self.path} is closed")
        self._f.write(samples)
        self.data_bytes += len(samples)

    def sync(self) -> None:
        """Make the header describe everything written so far, and flush."""
        f = self._f
        if f is None or self._synced == self.data_bytes:
            return
        f.flush()
        f.seek(4)
        f.write(struct.pack("<I", 36 + self.data_bytes))
        f.seek(40)
        f.write(struct.pack("<I", self.data_bytes))
        f.seek(0, 2)
        f.flush()
        self._synced = self.data_bytes

    def close(self) -> None:
        if self._f is None:
            return
        try:
            self.sync()
        finally:
            self._f.close()
            self._f = None


def load_wav_mono48k(path: Path) -> bytes:
    """A PCM WAV file (8/16/24/32-bit, any rate and channel count) as 48 kHz mono s16le."""
    if not path.is_file():
        raise DeviceNotFound(f"sim.mic: WAV file {str(path)!r} not found")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            if rate > 0 and w.getnframes() / rate > MAX_LOOP_S:
                raise DeviceError(f"sim.mic: {str(path)!r} is longer than {MAX_LOOP_S} s; "
                                  "use a shorter clip (it is held in memory)")
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise DeviceError(f"sim.mic: {str(path)!r} is not a PCM WAV file ({exc})") from exc
    if rate <= 0 or channels <= 0 or width not in (1, 2, 3, 4):
        raise DeviceError(f"sim.mic: {str(path)!r} has an unsupported format "
                          f"({width * 8}-bit, {channels} channels, {rate} Hz)")
    x = _to_float_s16(raw, width)
    usable = x.size - x.size % channels
    mono = x[:usable].reshape(-1, channels).mean(axis=1).astype(np.float32)
    if mono.size == 0:
        raise DeviceError(f"sim.mic: {str(path)!r} holds no audio")
    if rate != SAMPLE_RATE:
        mono = _resample_loop(mono, rate)
    return bytes(saturate_s16(mono).astype("<i2").tobytes())


def _resample_loop(x: FloatArray, rate: int) -> FloatArray:
    """Resample a whole clip that will be looped: the end interpolates into the start."""
    count = max(1, round(x.size * SAMPLE_RATE / rate))
    positions = np.arange(count, dtype=np.float64) * (rate / SAMPLE_RATE)
    wrapped = np.concatenate((x, x[:1]))
    return np.interp(positions, np.arange(wrapped.size), wrapped).astype(np.float32)


def _to_float_s16(raw: bytes, width: int) -> FloatArray:
    """Interleaved WAV samples to float32 in s16 units."""
    if width == 1:  # unsigned 8-bit
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) * 256.0)
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32)
    if width == 3:
        b = np.frombuffer(raw[: len(raw) - len(raw) % 3], dtype=np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8)
             | (b[:, 2].astype(np.int32) << 16))
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return (v / 256.0).astype(np.float32)
    return (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0).astype(np.float32)

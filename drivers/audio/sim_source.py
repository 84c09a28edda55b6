"""The sim mic's samples: frame ``n`` of a tone, of silence or of a looped WAV file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.audio.base import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from drivers.audio.pcm import FRAME_BYTES, SILENCE_FRAME, apply_gain, saturate_s16
from drivers.audio.wavfile import load_wav_mono48k
from drivers.errors import DeviceNotFound
from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

FRAME_S = FRAME_MS / 1000.0
TONE_AMPLITUDE = 0.5  # of full scale: -6 dBFS peak


def resolve_sim_path(value: str, state_dir: Path) -> Path:
    """A sim WAV path: absolute, else in the state dir, else relative to the working dir."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    in_state = state_dir / path
    if in_state.exists() or not path.exists():
        return in_state
    return path.resolve()


class _Source:
    """Sample generator for frame ``n`` of the sim mic."""

    def __init__(self, spec: str, state_dir: Path) -> None:
        self.spec = spec
        self._tone_hz: float | None = None
        self._loop: bytes | None = None
        #: a tone of whole hertz repeats every ``_period`` frames: those frames, at a gain
        self._frames: dict[tuple[int, float], bytes] = {}
        self._period = 0
        if spec == "silence":
            return
        if spec.startswith("tone:"):
            try:
                hz = float(spec[5:])
            except ValueError:
                hz = -1.0
            if not 0 < hz < SAMPLE_RATE / 2:
                raise ValueError(f"sim.mic: tone frequency must be 0 < hz < "
                                 f"{SAMPLE_RATE // 2}, got {spec!r}")
            self._tone_hz = hz
            if hz == int(hz):
                per_second = 1000 // FRAME_MS
                self._period = per_second // math.gcd(int(hz), per_second)
            return
        path = resolve_sim_path(spec, state_dir)
        if not path.is_file():
            places = str(path) if Path(spec).is_absolute() else (
                f"{state_dir / spec} or {Path.cwd() / spec}")
            raise DeviceNotFound(f"sim.mic: WAV file {spec!r} not found (looked for {places})")
        data = load_wav_mono48k(path)
        while len(data) < FRAME_BYTES:  # a very short file still loops cleanly
            data += data
        self._loop = data

    def frame_at_gain(self, n: int, gain: float) -> bytes:
        """Frame ``n`` scaled by ``gain``; a tone's frames are made once per gain."""
        if not self._period:
            return apply_gain(self.frame(n), gain)
        key = (n % self._period, gain)
        samples = self._frames.get(key)
        if samples is None:
            if len(self._frames) >= 4 * self._period:  # gains changed: start over
                self._frames.clear()
            samples = self._frames[key] = apply_gain(self.frame(n), gain)
        return samples

    def frame(self, n: int) -> bytes:
        if self._tone_hz is not None:
            start = n * FRAME_SAMPLES
            # Phase from the absolute sample number, wrapped to one cycle first, so
            # there is no drift and no precision loss however long it runs.
            cycles = (start * self._tone_hz / SAMPLE_RATE) % 1.0
            t = np.arange(FRAME_SAMPLES, dtype=np.float64) * (self._tone_hz / SAMPLE_RATE)
            x = np.sin(2.0 * math.pi * (cycles + t)) * (32767.0 * TONE_AMPLITUDE)
            return bytes(saturate_s16(x).astype("<i2").tobytes())
        if self._loop is not None:
            size = len(self._loop)
            offset = (n * FRAME_BYTES) % size
            chunk = self._loop[offset: offset + FRAME_BYTES]
            if len(chunk) < FRAME_BYTES:
                chunk += self._loop[: FRAME_BYTES - len(chunk)]
            return chunk
        return SILENCE_FRAME

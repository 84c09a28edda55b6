"""Test signals for the speakerphone processing: speech from espeak-ng, a synthetic room.

Everything is deterministic: fixed texts, fixed voices, seeded noise. Time is simulated:
frame k of the speaker is stamped as played at ``T0 + k * 20 ms`` and frame k of the mic as
captured at the same instant, so nothing waits on a real clock.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from services.audio import AudioProcessor

Signal = npt.NDArray[np.float64]
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
T0 = 1000.0  # monotonic time of the first frame


def espeak(text: str, voice: str, path: Path, speed: int = 160) -> Signal:
    """``text`` spoken by espeak-ng, resampled to 48 kHz with sox, as float samples."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to make test speech (see scripts/deps.sh)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
                   check=True, capture_output=True, timeout=60)
    # -D: no dither, so the same text gives the same samples in every run
    subprocess.run(["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                    str(path)], check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return data.astype(np.float64)


def scale_to_dbfs(x: Signal, dbfs: float) -> Signal:
    """``x`` scaled so that its active part (above -50 dB of its peak) has RMS ``dbfs``."""
    active = np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)
    rms = float(np.sqrt(np.mean(x[active] ** 2)))
    return x * (32768.0 * 10 ** (dbfs / 20) / rms)


def room_impulse_response(seed: int, length_ms: float = 100.0, gain_db: float = -6.0) -> Signal:
    """Exponentially decaying noise (60 dB down at ``length_ms``) with energy ``gain_db``."""
    rng = np.random.default_rng(seed)
    n = int(SAMPLE_RATE * length_ms / 1000)
    t = np.arange(n) / SAMPLE_RATE
    h = rng.standard_normal(n) * np.exp(-t * 6.9 / (length_ms / 1000))
    return h / np.sqrt(np.sum(h * h)) * 10 ** (gain_db / 20)


def echo_of(far: Signal, rir: Signal, delay_ms: float) -> Signal:
    """What the mic hears of ``far``: through the room, ``delay_ms`` after it was played."""
    d = round(SAMPLE_RATE * delay_ms / 1000)
    n = 1 << (len(far) + len(rir)).bit_length()
    wet = np.fft.irfft(np.fft.rfft(far, n) * np.fft.rfft(rir, n), n)[: len(far)]
    return np.concatenate([np.zeros(d), wet])[: len(far)]


def white_noise(seconds: float, dbfs: float, seed: int) -> Signal:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(seconds * SAMPLE_RATE)) * 32768.0 * 10 ** (dbfs / 20)


def fit(x: Signal, n: int) -> Signal:
    """``x`` cut or zero-padded to ``n`` samples."""
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x))])


def to_pcm(x: Signal) -> npt.NDArray[np.int16]:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def frame_count(x: Signal) -> int:
    return len(x) // FRAME_SAMPLES


def run(processor: AudioProcessor, mic: Signal, far: Signal | None = None,
        jitter_s: float = 0.0, seed: int = 0, vad: list[bool] | None = None,
        ahead: int = 2, stamp_error_s: float = 0.0) -> npt.NDArray[np.int16]:
    """Play ``far`` and capture ``mic`` through ``processor``; the processed mic signal.

    Each speaker frame is reported two frames ahead of the mic frame captured at the same
    time (as a speaker buffer does; ``ahead``). ``jitter_s`` adds random error to every
    timestamp; ``stamp_error_s`` is added to every playout stamp (a speaker whose stamps
    are off by that much).
    """
    rng = np.random.default_rng(seed)
    mic16 = to_pcm(mic)
    far16 = to_pcm(far) if far is not None else None
    n = frame_count(mic)
    out = np.zeros(n * FRAME_SAMPLES, dtype=np.int16)

    def stamp(k: int) -> float:
        return T0 + k * FRAME_S + (rng.uniform(-jitter_s, jitter_s) if jitter_s else 0.0)

    def play(k: int) -> None:
        if far16 is not None and k < n:
            chunk = far16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
            played_at = stamp(k) + stamp_error_s
            processor.feed_playout(PcmFrame(chunk, played_at, k), played_at)

    for k in range(ahead):
        play(k)
    for k in range(n):
        play(k + ahead)
        chunk = mic16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
        result = processor.process(PcmFrame(chunk, stamp(k), k))
        out[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES] = np.frombuffer(result.samples, np.int16)
        if vad is not None:
            vad.append(processor.vad)
    return out


def energy(x: npt.NDArray[np.generic]) -> float:
    y = np.asarray(x, dtype=np.float64)
    return float(np.sum(y * y))


def frame_levels(x: npt.NDArray[np.generic]) -> Signal:
    """Per-frame RMS level in dBFS (floored at -120)."""
    y = np.asarray(x, dtype=np.float64)
    n = len(y) // FRAME_SAMPLES
    p = np.mean(y[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES) ** 2, axis=1)
    return 10 * np.log10(np.maximum(p, 1e-12) / 32768.0**2)


def db(ratio: float) -> float:
    return float(10 * np.log10(ratio))

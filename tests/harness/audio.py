"""Reading what a sim speaker wrote: the tail of its WAV and the tones in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 48_000
HEADER = 44


def wav_tail(path: Path, seconds: float) -> npt.NDArray[np.float64]:
    """The last ``seconds`` of a 48 kHz mono s16 WAV (as written so far), as floats."""
    data = path.read_bytes()[HEADER:]
    data = data[: len(data) // 2 * 2]
    samples = np.frombuffer(data, dtype=np.int16).astype(np.float64) / 32768.0
    return samples[-int(seconds * RATE):]


def tone_power(samples: npt.NDArray[np.float64], freq: float, width: float = 15.0) -> float:
    """Power near ``freq`` relative to the whole signal (0..1); 0 for silence."""
    if len(samples) < RATE // 10:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    total = float(spectrum[freqs > 50].sum())
    if total <= 1e-12:
        return 0.0
    band = (freqs > freq - width) & (freqs < freq + width)
    return float(spectrum[band].sum()) / total


def dominant_hz(samples: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    spectrum[freqs < 50] = 0
    return float(freqs[int(np.argmax(spectrum))])


def rms(samples: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(samples ** 2))) if len(samples) else 0.0

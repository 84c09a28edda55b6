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


WINDOW = RATE // 50  # 20 ms


def tone_levels(samples: npt.NDArray[np.float64], freq: float) -> npt.NDArray[np.float64]:
    """The amplitude of the ``freq`` sine in each 20 ms window of ``samples`` (a
    least-squares fit of a sine and a cosine at that frequency, so another sound in
    the window does not count as the tone)."""
    n = len(samples) // WINDOW
    if n == 0:
        return np.zeros(0)
    blocks = samples[: n * WINDOW].reshape(n, WINDOW)
    t = np.arange(len(samples[: n * WINDOW])).reshape(n, WINDOW) / RATE
    s, c = np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)
    # Per window, solve [s c] @ [a b] = x (2x2 normal equations).
    ss, cc, sc = (s * s).sum(1), (c * c).sum(1), (s * c).sum(1)
    xs, xc = (blocks * s).sum(1), (blocks * c).sum(1)
    det = ss * cc - sc * sc
    a = (xs * cc - xc * sc) / det
    b = (xc * ss - xs * sc) / det
    return np.asarray(np.hypot(a, b), dtype=np.float64)


def continuity(levels: npt.NDArray[np.float64], clean: float) -> tuple[float, int]:
    """Share (0-1) of windows whose tone is within 6 dB of ``clean``, and the longest
    run of windows that are not (in windows)."""
    ok = (levels >= clean / 2) & (levels <= clean * 2)
    longest = run = 0
    for good in ok:
        run = 0 if good else run + 1
        longest = max(longest, run)
    return (float(ok.mean()) if len(ok) else 0.0), longest


def switch_gap_ms(samples: npt.NDArray[np.float64], old: float, new: float,
                  settle: int = 40) -> float:
    """How long neither tone was heard where ``samples`` go from the ``old`` tone to the
    ``new`` one: the 20 ms windows between the last one holding ``old`` and the first
    holding ``new`` (each within 6 dB of its level in the first / last ``settle``
    windows)."""
    before, after = tone_levels(samples, old), tone_levels(samples, new)
    clean_old = float(np.median(before[:settle]))
    clean_new = float(np.median(after[-settle:]))
    if clean_old <= 0.01 or clean_new <= 0.01:
        raise AssertionError(f"no clean tones to compare ({clean_old:.3f}, {clean_new:.3f})")
    first_new = int(np.argmax(after >= clean_new / 2))
    heard_old = np.nonzero(before[:first_new] >= clean_old / 2)[0]
    last_old = int(heard_old[-1]) if len(heard_old) else -1
    return (first_new - last_old - 1) * WINDOW * 1000 / RATE

"""How long after its playout stamp the speaker's sound reaches the microphone.

The echo canceller models echoes that arrive between 0 and ``echo_tail_ms`` after the
reference it is given. If a speaker's playout stamps are off (an unreported buffer, a
USB or Bluetooth device with its own latency), the echo can fall outside that window and
is not cancelled at all. This estimator cross-correlates the raw microphone with what
was played (GCC-PHAT on an 8 kHz copy of both, over the last second) to find the actual
delay, so the processor can move its reference window onto the echo.

The cross-spectrum is averaged over successive windows, so a steady echo path builds up
a sharp peak while chance correlations (a local talker, noise) average out. A delay is
only reported when that peak stands well clear of everything else, reflections aside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.lazy import lazy_module
from services.audio.reference import PlayoutReference

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from services.audio.speexdsp import Int16Array
    Float = npt.NDArray[np.float32]
else:
    np = lazy_module("numpy", globals(), "np")



class EchoDelayEstimator:
    """Cross-correlation delay finder; fed every raw mic frame, asked now and then."""

    def __init__(self, sample_rate: int, *, decimation: int = 6, window_s: float = 1.0,
                 min_delay_s: float = -0.1, max_delay_s: float = 0.5,
                 min_peak_ratio: float = 8.0, min_peak_margin: float = 2.0,
                 smoothing: float = 0.6) -> None:
        self.sample_rate = sample_rate
        self.decimation = decimation
        self.rate = sample_rate / decimation
        self.window = int(window_s * self.rate)
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.min_peak_ratio = min_peak_ratio
        self.min_peak_margin = min_peak_margin
        self.smoothing = smoothing
        self._mic = np.zeros(self.window, dtype=np.float32)
        self._filled = 0
        self._end_time: float | None = None  # capture time just after the newest sample
        span = int((window_s + max_delay_s - min_delay_s) * sample_rate)
        self._ref = np.zeros(span, dtype=np.int16)
        n = 1
        while n < self.window + span // decimation:
            n *= 2
        self._fft_size = n
        self._cross: npt.NDArray[np.complex128] | None = None
        self.last_confidence = 0.0  # peak over the spread of the correlation
        self.last_margin = 0.0  # peak over the strongest unrelated lag

    def add_mic(self, samples: Int16Array, captured_at: float) -> None:
        """Append a raw (not yet echo-cancelled) mic frame."""
        d = self.decimation
        usable = len(samples) - len(samples) % d
        low = samples[:usable].astype(np.float32).reshape(-1, d).mean(axis=1)
        k = len(low)
        self._mic[:-k] = self._mic[k:]
        self._mic[-k:] = low
        self._filled = min(self.window, self._filled + k)
        self._end_time = captured_at + len(samples) / self.sample_rate

    def reset(self) -> None:
        self._mic[:] = 0
        self._filled = 0
        self._end_time = None
        self._cross = None

    def estimate(self, reference: PlayoutReference) -> float | None:
        """Delay (s) from playout stamp to capture, or None when it cannot be told."""
        end = self._end_time
        if end is None or self._filled < self.window:
            return None
        start = end - self.window / self.rate - self.max_delay_s
        reference.peek(start, self._ref)
        d = self.decimation
        usable = len(self._ref) - len(self._ref) % d
        ref = self._ref[:usable].astype(np.float32).reshape(-1, d).mean(axis=1)
        mic = self._mic
        if _rms(ref) < 30.0 or _rms(mic) < 10.0:  # far end silent (< -60 dBFS) or mic dead
            self.last_confidence = 0.0
            return None
        n = self._fft_size
        window = np.conj(np.fft.rfft(mic, n)) * np.fft.rfft(ref, n)
        if self._cross is None:
            self._cross = window
        else:
            self._cross = self.smoothing * self._cross + (1.0 - self.smoothing) * window
        cross = self._cross / np.maximum(np.abs(self._cross), 1e-9)  # PHAT weighting
        corr = np.fft.irfft(cross, n)[: len(ref) - len(mic) + 1]
        # corr[k] matches mic[i] with ref[i + k]: a delay of max_delay - k / rate.
        peak = int(np.argmax(corr))
        top = float(corr[peak])
        self.last_confidence = top / (float(np.std(corr)) or 1e-9)
        # Everything but the peak's own neighbourhood: 10 ms before it and the room's
        # reflections up to 120 ms after it (later arrivals sit at smaller k).
        others = corr.copy()
        others[max(0, peak - int(0.12 * self.rate)):peak + int(0.01 * self.rate) + 1] = -np.inf
        rival = float(np.max(others)) if np.isfinite(others).any() else 0.0
        self.last_margin = top / rival if rival > 0 else float("inf")
        if self.last_confidence < self.min_peak_ratio or self.last_margin < self.min_peak_margin:
            return None
        # The strongest path may be a reflection: take the earliest arrival within 30 ms
        # before it that is at least half as strong (the direct sound).
        last = min(len(corr), peak + int(0.03 * self.rate) + 1)
        strong = np.flatnonzero(corr[peak:last] >= 0.5 * corr[peak])
        onset = peak + int(strong[-1])
        return self.max_delay_s - onset / self.rate


def _rms(x: Float) -> float:
    return float(np.sqrt(np.mean(x * x)))

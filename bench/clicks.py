"""Clicks to send and their onsets to find, for the mouth-to-ear measurements.

A click is a 4 ms windowed 2 kHz burst at -3 dBFS, one every :data:`PERIOD_S` seconds:
sharp enough to time to a fraction of a millisecond after Opus, far enough apart that
each arrival is matched to the right departure. :class:`OnsetDetector` finds the first
sample above a threshold after a quiet stretch and reports its time on whatever clock
the caller stamps the blocks with.
"""

from __future__ import annotations

import math
import time
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drivers.audio.base import PcmFrame

PERIOD_S = 0.8
CLICK_S = 0.004
CLICK_HZ = 2000.0
AMPLITUDE = 0.7
THRESHOLD = 0.12  # of full scale
REFRACTORY_S = 0.15


def click_samples(rate: int, seconds: float, period: float = PERIOD_S) -> np.ndarray[Any, Any]:
    total = round(seconds * rate)
    out = np.zeros(total, dtype=np.float64)
    n = round(CLICK_S * rate)
    t = np.arange(n) / rate
    burst = np.sin(2 * math.pi * CLICK_HZ * t) * np.hanning(n) * AMPLITUDE
    step = round(period * rate)
    for start in range(step // 2, total - n, step):
        out[start:start + n] = burst
    return out


def write_click_wav(path: Path, *, rate: int = 48_000, channels: int = 1,
                    seconds: float = 6.0, period: float = PERIOD_S) -> Path:
    """A WAV of clicks (loops cleanly: its length is a whole number of periods)."""
    seconds = max(1, round(seconds / period)) * period
    x = click_samples(rate, seconds, period)
    pcm = (x * 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


class OnsetDetector:
    """Feed blocks of s16 mono samples with the time of their first sample."""

    def __init__(self, rate: int = 48_000, threshold: float = THRESHOLD,
                 refractory: float = REFRACTORY_S) -> None:
        self.rate = rate
        self.level = int(threshold * 32768)
        self.refractory = refractory
        self.onsets: list[float] = []
        self._quiet_until = -math.inf

    def feed(self, samples: bytes, t0: float) -> None:
        x = np.frombuffer(samples, dtype="<i2")
        loud = np.flatnonzero(np.abs(x.astype(np.int32)) >= self.level)
        for i in loud:
            t = t0 + int(i) / self.rate
            if t >= self._quiet_until:
                self.onsets.append(t)
                self._quiet_until = t + self.refractory

    def playout_listener(self) -> Callable[[PcmFrame, float], None]:
        def listener(frame: PcmFrame, played_at: float) -> None:
            self.feed(frame.samples, played_at)

        return listener


def match_latencies(sent: Sequence[float], received: Sequence[float],
                    window: float = PERIOD_S * 0.9) -> list[float]:
    """Pair every arrival with the latest departure before it (within ``window``)."""
    out = []
    j = 0
    sent = sorted(sent)
    for t in sorted(received):
        while j + 1 < len(sent) and sent[j + 1] <= t:
            j += 1
        if sent and sent[j] <= t and t - sent[j] < window:
            out.append(t - sent[j])
    return out


class TapMic:
    """A :class:`MicSource` wrapper that records click onsets at their capture time."""

    def __init__(self, mic: Any, detector: OnsetDetector) -> None:
        self.mic = mic
        self.detector = detector

    async def start(self) -> None:
        await self.mic.start()

    async def read(self) -> PcmFrame:
        frame: PcmFrame = await self.mic.read()
        self.detector.feed(frame.samples, frame.captured_at)
        return frame

    async def stop(self) -> None:
        await self.mic.stop()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.mic.stats)


class TapSink:
    """A :class:`SpeakerSink` wrapper recording click onsets at the time each block is
    pulled from its source (the mixer) or handed to it (the frame is ready to play:
    "playout-ready")."""

    def __init__(self, sink: Any, detector: OnsetDetector) -> None:
        self.sink = sink
        self.detector = detector

    def write(self, frame: PcmFrame) -> None:
        self.detector.feed(frame.samples, time.monotonic())
        self.sink.write(frame)

    def set_source(self, source: Any) -> None:
        if source is None:
            self.sink.set_source(None)
            return

        def tapped(count: int, play_at: float) -> PcmFrame | None:
            frame: PcmFrame | None = source(count, play_at)
            self.detector.feed(frame.samples if frame else bytes(2 * count), time.monotonic())
            return frame

        self.sink.set_source(tapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

"""A steady tone with timing marks: continuity and mouth-to-ear from one signal.

The mic plays a 440 Hz tone at the sim mic's level, looped without a seam (10 s, a whole
number of cycles), with a short 2 kHz burst (Hann-shaped, 30 ms) added every
:data:`MARK_EVERY_S`. Continuity looks only at the 440 Hz sine in each 20 ms window (a
least-squares fit, :func:`tests.harness.audio.tone_levels`), which the bursts do not
touch; mouth-to-ear pairs each burst heard with the latest burst the mic captured
before it. A burst's onset is found the same way at both ends (:func:`mark_onsets`), so
the detector's own delay cancels.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.audio.sim import TONE_AMPLITUDE

RATE = 48_000
TONE_HZ = 440.0
MARK_HZ = 2000.0
MARK_EVERY_S = 2.0
MARK_S = 0.030
MARK_AMPLITUDE = 0.3
LOOP_S = 10.0
HOP = 48  # onset resolution: 1 ms
FIT = 240  # 5 ms: ten whole cycles of the mark


def marked_tone() -> npt.NDArray[np.float64]:
    """The loop, as floats (full scale 1.0)."""
    n = round(LOOP_S * RATE)
    t = np.arange(n) / RATE
    x = TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * t)
    m = round(MARK_S * RATE)
    burst = MARK_AMPLITUDE * np.hanning(m) * np.sin(2 * math.pi * MARK_HZ * np.arange(m) / RATE)
    for k in range(round(LOOP_S / MARK_EVERY_S)):
        start = round((k * MARK_EVERY_S + 0.5) * RATE)
        x[start:start + m] += burst
    return np.asarray(x, dtype=np.float64)


def write_marked_tone(path: Path) -> Path:
    """The loop as a 48 kHz mono WAV (what ``sim.mic`` plays)."""
    pcm = np.clip(np.round(marked_tone() * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def mark_envelope(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Amplitude of the 2 kHz mark every :data:`HOP` samples (over :data:`FIT`)."""
    n = (len(x) - FIT) // HOP
    if n <= 0:
        return np.zeros(0)
    idx = np.arange(n)[:, None] * HOP + np.arange(FIT)[None, :]
    t = np.arange(FIT) / RATE
    s, c = np.sin(2 * math.pi * MARK_HZ * t), np.cos(2 * math.pi * MARK_HZ * t)
    blocks = x[idx]
    # whole cycles: sin and cos are orthogonal with equal energy over the window
    return np.asarray(2 * np.hypot(blocks @ s, blocks @ c) / FIT, dtype=np.float64)


def mark_onsets(x: npt.NDArray[np.float64], threshold: float) -> list[int]:
    """Sample offsets in ``x`` where the mark rises above ``threshold`` (at most one per
    half mark period)."""
    env = mark_envelope(x)
    out: list[int] = []
    refractory = round(MARK_EVERY_S / 2 * RATE)
    above = np.flatnonzero(env >= threshold)
    for i in above:
        at = int(i) * HOP + FIT
        if not out or at - out[-1] >= refractory:
            out.append(at)
    return out


def source_onsets(threshold: float) -> list[int]:
    """Onsets in the loop itself, at ``threshold`` (a share of the clean mark level)."""
    x = marked_tone()
    return mark_onsets(np.concatenate((x, x[:FIT * 2])), threshold)[: round(LOOP_S / MARK_EVERY_S)]


def mouth_times(onsets: Sequence[int], start: float, base_frame: int, frame_samples: int,
                until: float) -> list[float]:
    """When the mic captured each mark, from its clock's origin (frame ``base_frame`` at
    monotonic ``start``) up to ``until``."""
    loop = round(LOOP_S * RATE)
    base = base_frame * frame_samples
    out: list[float] = []
    q = base // loop
    while True:
        times = [start + (q * loop + o - base) / RATE for o in onsets if q * loop + o >= base]
        out += times
        if times and times[-1] > until:
            return sorted(out)
        q += 1


class Timeline:
    """What a speaker played, rebuilt from its playout listener (``(frame, due)``): one
    20 ms slot per frame; slots with no frame (silence) stay zero."""

    def __init__(self, frame_s: float = 0.02) -> None:
        self.frame_s = frame_s
        self.frames: list[tuple[float, bytes]] = []

    def listener(self, frame: Any, played_at: float) -> None:
        self.frames.append((played_at, frame.samples))

    def between(self, t0: float, t1: float) -> tuple[float, npt.NDArray[np.float64]]:
        """(time of the first sample, samples) of the slots due in [t0, t1)."""
        got = [(t, s) for t, s in list(self.frames) if t0 <= t < t1]
        if not got:
            return t0, np.zeros(0)
        first = got[0][0]
        per = round(self.frame_s * RATE)
        slots = round((got[-1][0] - first) / self.frame_s) + 1
        out = np.zeros(slots * per)
        for t, s in got:
            k = round((t - first) / self.frame_s)
            x = np.frombuffer(s, dtype="<i2").astype(np.float64) / 32768.0
            out[k * per: k * per + min(per, len(x))] = x[:per]
        return first, out


def match(mouth: Sequence[float], ear: Sequence[float]) -> list[float]:
    """Pair every mark heard with the latest one captured before it (within a period)."""
    out = []
    for e in ear:
        before = [m for m in mouth if m <= e]
        if before and e - before[-1] < MARK_EVERY_S:
            out.append(e - before[-1])
    return out

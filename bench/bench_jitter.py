"""Jitter buffer alone, on impairment traces: continuity, delay and concealment.

One member's :class:`~services.room.jitter.JitterBuffer` gets 60 s of 20 ms Opus packets
of a steady voice-like signal (a gliding harmonic series, which libopus codes as speech
with in-band FEC on about half of its packets) through a simulated network, and a
simulated sound card pulls 20 ms at a time; all on one simulated clock, so the figures
are exact and repeatable (the seed is fixed). The impairments are the issue's levels,
applied on one leg (the boxes' test through Janus has two). Continuity is the share of
20 ms windows (after the first 200 ms) whose level is within 6 dB of the clean level; the
longest gap is the longest run of windows that are not; delay is the buffer's own
(``delay_ms``: earliest arrival to playout, p50). No reference: these are our figures
alone, for tracking; the room benchmark compares with Chromium end to end.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from bench.report import Row
from services.audio.opus import OpusDecoder, OpusEncoder
from tests.harness.playout import play_trace

RATE = 48_000
FRAME = 960
SECONDS = 60
PACKETS = SECONDS * 50


def voice(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    f0 = 140 * (1 + 0.15 * np.sin(2 * np.pi * 1.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    return np.asarray(x * 7000, dtype=np.int16)


def _arrivals(level: str, rng: random.Random) -> dict[int, float]:
    out: dict[int, float] = {}
    bad = False
    for i in range(PACKETS):
        sent = i * 0.02
        delay = 0.002
        if "jitter" in level:
            delay += rng.uniform(0.0, 0.030)  # reordering allowed
        if "loss10" in level and rng.random() < 0.10:
            continue
        if level == "loss5" and rng.random() < 0.05:
            continue
        if level == "burst":  # Gilbert-Elliott: 3 % loss in bursts of 3 on average
            bad = rng.random() < (2 / 3 if bad else 0.0155)
            if bad:
                continue
        out[i] = sent + delay
    return out


def _run(packets: list[bytes], clean_rms: float, level: str) -> dict[str, Any]:
    rng = random.Random(15)
    arrivals = [(t, i) for i, t in _arrivals(level, rng).items()]
    run = play_trace(packets, arrivals, SECONDS, frame=FRAME, pull=FRAME)
    played = run.out.astype(np.float64)
    n = len(played) // FRAME
    rms = np.sqrt((played[: n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1))
    ok = rms >= clean_rms / 2  # within 6 dB of the clean level
    runs, longest = 0, 0
    for good in ok[10:]:
        runs = 0 if good else runs + 1
        longest = max(longest, runs)
    return {"continuity_pct": 100 * float(ok[10:].mean()), "longest_gap_ms": longest * 20,
            "delay_p50_ms": float(np.percentile(run.delays[250:], 50)), **run.buf.stats()}


def measure() -> dict[str, Any]:
    signal = voice(PACKETS * FRAME)
    with OpusEncoder(bitrate=32000, fec=True, loss_pct=10) as enc:
        packets = [enc.encode(signal[i * FRAME:(i + 1) * FRAME]) for i in range(PACKETS)]
    with OpusDecoder() as dec:
        clean = np.concatenate([dec.decode(p) for p in packets]).astype(np.float64)
    clean_rms = float(np.median(np.sqrt((clean.reshape(-1, FRAME) ** 2).mean(axis=1))))
    levels = ("clean", "loss5", "jitter", "loss10+jitter", "burst")
    return {level: _run(packets, clean_rms, level) for level in levels}


def run() -> list[Row]:
    m = measure()
    rows = []
    for level, r in m.items():
        notes = (f"gap {r['longest_gap_ms']} ms, delay p50 {r['delay_p50_ms']:.0f} ms "
                 f"(target {r['target_ms']:.0f}), {r['concealed_pct']:.1f}% concealed, "
                 f"{r['stretched_pct']:.1f}% stretched, fec {r['fec']}")
        rows.append(Row("jitter", f"continuity, {level}", r["continuity_pct"], "%", None, "",
                        lower_is_better=False, notes=notes, extra=r))
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))

"""Opus in-band FEC on speech: the mic's encoder with FEC on against off, through loss.

On the sim mic's steady tone CELT's own loss concealment (FEC off) is all but perfect,
while FEC switches libopus to SILK or hybrid, whose decoders take a few packets to recover
after a loss FEC cannot cover; that kept ``audio.opus_fec`` off by default until this
comparison. No voice is a steady tone. Here the sent signal is speech (espeak-ng, two
voices, about 19 s, at -20 dBFS), coded by the mic's own encoder
(:class:`~services.room.opus_send.OpusSendEncoder`, 32 kbps, told the loss to expect as the
room server's reports would), sent through random loss at a fixed network delay, and played
by the member's jitter buffer on a 20 ms pull, all on one simulated clock (exact and
repeatable; three seeds per level).

What is compared, on the 20 ms windows where the speech is active (within 40 dB of its
loudest window), between what was played and what was sent (aligned by
cross-correlation): the share of windows whose level is within 3 dB of the sent one,
and the log-spectral distance (dB, lower is closer) over the windows that a loss touched
(the lost packet's window and the two after it). "ours" is FEC on (the default), the
reference FEC off.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Row
from services.room.opus_send import OpusSendEncoder, OpusSendSettings
from tests.audio_dsp.signals import espeak, scale_to_dbfs, to_pcm
from tests.harness.playout import play_trace

RATE = 48_000
FRAME = 960
#: Network delay of every packet that arrives (s): no jitter, so playout is steady.
DELAY_S = 0.03
LEVELS = (5, 10, 20)
SEEDS = (1, 2, 3)
TEXTS = (
    ("en-us", "The quick brown fox jumps over the lazy dog. Please call Stella and ask her "
              "to bring these things with her from the store: six spoons of fresh snow peas."),
    ("de", "Guten Morgen. Die Besprechung beginnt um zehn Uhr im kleinen Raum am Ende des "
           "Flurs, bitte bringen Sie die Unterlagen vom letzten Treffen mit."),
)


def speech() -> np.ndarray:
    """The sent signal: the texts spoken, 200 ms apart, at -20 dBFS, int16."""
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, text) in enumerate(TEXTS):
            parts.append(espeak(text, voice, Path(tmp) / f"s{i}.wav"))
            parts.append(np.zeros(RATE // 5))
    x = scale_to_dbfs(np.concatenate(parts), -20.0)
    return to_pcm(x[: len(x) - len(x) % FRAME])


def encode(pcm: np.ndarray, fec: bool, loss_pct: int) -> list[bytes]:
    enc = OpusSendEncoder(OpusSendSettings(fec=fec))
    enc.set_expected_loss(loss_pct)
    try:
        return [p.data for p in enc.encode(pcm.tobytes())]
    finally:
        enc.close()


def play(packets: list[bytes], lost: set[int]) -> tuple[np.ndarray, dict[str, Any]]:
    """What the member plays of ``packets`` without those in ``lost``."""
    arrivals = [(i * FRAME / RATE + DELAY_S, i) for i in range(len(packets)) if i not in lost]
    run = play_trace(packets, arrivals, len(packets) * FRAME / RATE + 0.5)
    return run.out, run.buf.stats()


def lag_of(sent: np.ndarray, played: np.ndarray) -> int:
    """Samples by which ``played`` lags ``sent`` (the cross-correlation's peak)."""
    n = 1 << (len(sent) + len(played)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(played.astype(np.float64), n)
                        * np.conj(np.fft.rfft(sent.astype(np.float64), n)), n)
    return int(np.argmax(corr[: len(played)]))


def compare(sent: np.ndarray, played: np.ndarray, lost: set[int]
            ) -> tuple[float, float, int]:
    """(share of active windows within 3 dB, mean log-spectral distance of touched ones,
    the lag). One lag for the whole run: the delay is steady on this network (checked on
    each half of the speech when this was written)."""
    n = len(sent) // FRAME
    lag = lag_of(sent, played)
    shifted = played[lag:lag + len(sent)]
    shifted = np.concatenate([shifted, np.zeros(len(sent) - len(shifted), played.dtype)])
    a = sent[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    b = shifted[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    level_a = 10 * np.log10((a * a).mean(axis=1) + 1.0)
    level_b = 10 * np.log10((b * b).mean(axis=1) + 1.0)
    active = level_a > level_a.max() - 40.0
    within = float((np.abs(level_a - level_b)[active] <= 3.0).mean())
    window = np.hanning(FRAME)
    spec_a = 10 * np.log10(np.abs(np.fft.rfft(a * window, axis=1)) ** 2 + 1e3)
    spec_b = 10 * np.log10(np.abs(np.fft.rfft(b * window, axis=1)) ** 2 + 1e3)
    lsd = np.sqrt(((spec_a - spec_b) ** 2).mean(axis=1))
    touched = np.zeros(n, bool)
    for i in lost:
        touched[i:i + 3] = True
    sel = touched & active
    return within, float(lsd[sel].mean()) if sel.any() else 0.0, lag


def measure() -> dict[str, Any]:
    sent = speech()
    result: dict[str, Any] = {"seconds": len(sent) / RATE}
    for pct in (0, *LEVELS):
        for fec in (True, False):
            packets = encode(sent, fec, pct)
            runs = []
            for seed in (SEEDS if pct else SEEDS[:1]):
                rng = random.Random(seed)
                lost = {i for i in range(5, len(packets)) if rng.random() < pct / 100}
                played, stats = play(packets, lost)
                within, lsd, lag = compare(sent, played, lost)
                runs.append({"within_3db": within, "lsd_db": lsd, "lost": len(lost),
                             "delay_ms": lag * 1000 / RATE,
                             "fec_rebuilt": stats["fec"],
                             "concealed_pct": stats["concealed_pct"]})
            result[f"{pct}_{'on' if fec else 'off'}"] = {
                "bytes": sum(map(len, packets)), "runs": runs}
    return result


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def run() -> list[Row]:
    m = measure()
    rows = []
    for pct in (0, *LEVELS):
        on, off = m[f"{pct}_on"], m[f"{pct}_off"]
        note = (f"{m['seconds']:.0f} s of speech, {len(on['runs'])} seed(s); FEC rebuilt "
                f"{sum(r['fec_rebuilt'] for r in on['runs'])} of "
                f"{sum(r['lost'] for r in on['runs'])} losses; kbps on/off "
                f"{on['bytes'] * 8 / m['seconds'] / 1000:.1f}/"
                f"{off['bytes'] * 8 / m['seconds'] / 1000:.1f}; played "
                f"{_mean(on['runs'], 'delay_ms'):.0f}/{_mean(off['runs'], 'delay_ms'):.0f} ms "
                "after it was sent")
        rows.append(Row("fec speech", f"{pct} % loss: active windows within 3 dB",
                        round(100 * _mean(on["runs"], "within_3db"), 2), "%",
                        round(100 * _mean(off["runs"], "within_3db"), 2), "FEC off",
                        lower_is_better=False, notes=note, extra={"on": on, "off": off}))
        if pct:
            rows.append(Row("fec speech", f"{pct} % loss: spectral distance after a loss",
                            round(_mean(on["runs"], "lsd_db"), 2), "dB",
                            round(_mean(off["runs"], "lsd_db"), 2), "FEC off"))
    return rows

"""The mic encoder's libopus complexity: CPU per 20 ms frame against what the speech keeps.

For each complexity (and libopus's own default, set by not asking) the bench's synthetic
voice (:func:`bench.bench_opus_send.voice`, 10 s) is encoded as the room's mic is
(mono 48 kHz, application VoIP, 32 kbps), in a tight loop, best of three passes, and
decoded again with libopus:

- ``us_per_frame``: ``time.process_time`` per 20 ms frame encoded;
- ``snr_db``: the decoded voice against the input (aligned on the codec delay);
- ``fec_snr_db`` / ``plc_snr_db``: with in-band FEC on and 10 % loss expected, every
  tenth packet dropped; the median SNR of the dropped frames rebuilt from the next
  packet's FEC data, against the same frames concealed without FEC. FEC data is SILK's
  (LBRR): the gap between the two shows FEC still works at that complexity;
- ``modes``: the Opus configurations (TOC ``config``) the packets used: 15 is hybrid
  fullband, 13 hybrid super-wideband, 9 SILK wideband (RFC 6716 section 3.1).

The SNR of a perceptual codec is not a listening score, but at one bitrate and signal
it moves when the encoder starts to cut corners.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from services.audio.opus import OPUS_GET_COMPLEXITY_REQUEST, OpusDecoder, OpusEncoder

FRAME = 960  # 20 ms at 48 kHz
BITRATE = 32_000
LOSS_EVERY = 10
COMPLEXITIES: tuple[int | None, ...] = (None, 10, 9, 7, 5, 3, 1, 0)

Pcm = np.ndarray[Any, np.dtype[np.int16]]


def _snr(ref: Pcm, got: Pcm) -> float:
    a, b = ref.astype(np.float64), got.astype(np.float64)
    noise = float((a - b) @ (a - b))
    return 10.0 * float(np.log10((float(a @ a) + 1.0) / (noise + 1.0)))


def _delay(ref: Pcm, got: Pcm) -> int:
    """The codec delay in samples: the lag (up to 20 ms) where the two agree best."""
    a = ref[:48_000].astype(np.float64)
    b = got.astype(np.float64)
    return max(range(FRAME), key=lambda k: float(a @ b[k:k + len(a)]))


def _encoder(complexity: int | None, fec: bool) -> OpusEncoder:
    return OpusEncoder(48_000, 1, bitrate=BITRATE, fec=fec, loss_pct=LOSS_EVERY if fec else 0,
                       complexity=complexity)


def _lossy(frames: list[Pcm], complexity: int | None, fec: bool, delay: int) -> float:
    """Median SNR of the dropped frames, rebuilt from FEC or concealed."""
    with _encoder(complexity, fec) as enc:
        packets = [enc.encode(f) for f in frames]
    decoder = OpusDecoder(48_000, 1)
    out, lost = [], []
    for i, packet in enumerate(packets[:-1]):
        if i % LOSS_EVERY == LOSS_EVERY // 2:
            lost.append(i)
            out.append(decoder.decode_fec(packets[i + 1], FRAME) if fec
                       else decoder.conceal(FRAME))
        else:
            out.append(decoder.decode(packet))
    got = np.concatenate(out)[delay:]
    ref = np.concatenate(frames)[:len(got)]
    snrs = [_snr(ref[i * FRAME:(i + 1) * FRAME], got[i * FRAME:(i + 1) * FRAME])
            for i in lost if (i + 1) * FRAME <= len(got)]
    return round(float(np.median(snrs)), 2)


def measure_one(pcm: Pcm, complexity: int | None, passes: int = 3) -> dict[str, Any]:
    frames = [pcm[i:i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    with _encoder(complexity, False) as enc:
        used = enc.get(OPUS_GET_COMPLEXITY_REQUEST)
        best = float("inf")
        for _ in range(passes):
            c0 = time.process_time()
            packets = [enc.encode(f) for f in frames]
            best = min(best, time.process_time() - c0)
    decoder = OpusDecoder(48_000, 1)
    got = np.concatenate([decoder.decode(p) for p in packets])
    delay = _delay(pcm, got)
    got = got[delay:]
    return {
        "complexity": used,
        "us_per_frame": round(best / len(frames) * 1e6, 1),
        "snr_db": round(_snr(pcm[:len(got)], got), 2),
        "fec_snr_db": _lossy(frames, complexity, True, delay),
        "plc_snr_db": _lossy(frames, complexity, False, delay),
        "kbps": round(sum(map(len, packets)) * 8 / (len(frames) * 0.02) / 1000, 1),
        "modes": sorted({p[0] >> 3 for p in packets}),
    }


def measure(pcm: Pcm) -> dict[str, dict[str, Any]]:
    """One entry per complexity, keyed ``"default"`` for libopus's own choice."""
    return {("default" if c is None else str(c)): measure_one(pcm, c) for c in COMPLEXITIES}

"""The libopus binding: loading, errors, and what FEC and PLC give back."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.errors import EdgeroomError
from services.audio.opus import (
    OpusDecoder,
    OpusEncoder,
    OpusError,
    OpusMissing,
    load_library,
    packet_samples,
)

RATE = 48_000
FRAME = 960


def voice(seconds: float) -> np.ndarray:
    """A voice-like signal: a gliding harmonic series in syllables (the encoder's voice
    detector must take it for speech, or it sends no FEC data)."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 140 * (1 + 0.15 * np.sin(2 * np.pi * 1.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0.05, 1)
    return (x * envelope * 7000).astype(np.int16)


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref64, err = ref.astype(np.float64), ref.astype(np.float64) - got.astype(np.float64)
    return 10 * np.log10(np.dot(ref64, ref64) / max(np.dot(err, err), 1.0))


def test_missing_library_is_named_clearly() -> None:
    with pytest.raises(OpusMissing, match="libopus0") as info:
        load_library(("libopus-not-here.so.9",))
    assert isinstance(info.value, ImportError) and isinstance(info.value, EdgeroomError)


def test_round_trip_sizes_and_errors() -> None:
    with OpusEncoder(bitrate=32000) as enc, OpusDecoder() as dec:
        packet = enc.encode(voice(0.02))
        assert packet_samples(packet) == FRAME
        assert len(dec.decode(packet)) == FRAME
        assert len(dec.conceal(480)) == 480
        with pytest.raises(OpusError, match="opus_decode"):
            dec.decode(b"\xff\xff\xff")
        with pytest.raises(ValueError, match="conceal"):
            dec.decode(b"")
        with pytest.raises(ValueError, match="0-100"):
            enc.set_packet_loss(101)
    with pytest.raises(ValueError, match="Opus decodes"):
        OpusDecoder(44100)
    dec = OpusDecoder(channels=2)
    assert "open" in repr(dec)
    dec.close()
    dec.close()
    with pytest.raises(ValueError, match="closed"):
        dec.conceal(960)


def test_fec_rebuilds_a_lost_voice_packet_better_than_plc() -> None:
    signal = voice(4.0)
    with OpusEncoder(bitrate=32000, fec=True, loss_pct=20) as enc:
        packets = [enc.encode(signal[i * FRAME:(i + 1) * FRAME]) for i in range(200)]
    fec_snr, plc_snr = [], []
    for k in range(20, 198, 3):
        decoders = [OpusDecoder() for _ in range(3)]
        for d in decoders:
            for i in range(k - 5, k):
                d.decode(packets[i])
        clean, fec_dec, plc_dec = decoders
        reference = clean.decode(packets[k])
        fec = fec_dec.decode_fec(packets[k + 1], FRAME)
        plc = plc_dec.conceal(FRAME)
        if not np.array_equal(fec, plc):  # the packet after carried FEC data
            fec_snr.append(snr_db(reference, fec))
            plc_snr.append(snr_db(reference, plc))
        for d in decoders:
            d.close()
    assert len(fec_snr) >= 20  # voiced stretches carry it
    assert np.median(fec_snr) > 6.0
    assert np.median(fec_snr) > np.median(plc_snr) + 3.0

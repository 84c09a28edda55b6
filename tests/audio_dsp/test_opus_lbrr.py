"""Reading a packet's LBRR (in-band FEC) flag, on packets from the real libopus encoder.

The ground truth is libopus's own decoder: ``decode_fec`` from a packet without LBRR
data gives exactly what plain PLC gives, and from one with LBRR data something else.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.audio.opus import OpusDecoder, OpusEncoder, OpusError
from services.audio.opus_lbrr import carries_lbrr, first_frame, silk_frames

RATE = 48_000


def voice(samples: int, channels: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A voiced, loud-then-soft test signal (SILK codes LBRR for active frames)."""
    t = (np.arange(samples) + k * samples) / RATE
    level = 1.0 if (k // 10) % 2 == 0 else 0.2
    x = (np.sin(2 * np.pi * 220 * t) * 8000 * level + np.sin(2 * np.pi * 660 * t) * 3000
         + rng.normal(0, 500, samples))
    if channels == 2:
        x = np.stack([x, np.roll(x, 7) * 0.7], 1).ravel()
    return x.astype(np.int16)


def packets(*, fec: bool, channels: int = 1, frame_ms: int = 20, bitrate: int = 32_000,
            count: int = 40) -> list[bytes]:
    rng = np.random.default_rng(1)
    with OpusEncoder(RATE, channels, bitrate=bitrate, fec=fec,
                     loss_pct=20 if fec else 0) as enc:
        n = RATE * frame_ms // 1000
        return [enc.encode(voice(n, channels, k, rng)) for k in range(count)]


@pytest.mark.parametrize("channels,frame_ms", [(1, 20), (2, 20), (1, 60), (2, 60), (1, 40)])
def test_the_flag_is_what_libopus_decodes_fec_from(channels: int, frame_ms: int) -> None:
    pk = packets(fec=True, channels=channels, frame_ms=frame_ms)
    n = RATE * frame_ms // 1000
    assert all(silk_frames(p[0]) for p in pk), "expected SILK or hybrid packets"
    flags, fec_differs = [], []
    for k in range(2, len(pk)):
        with OpusDecoder(RATE, channels) as a, OpusDecoder(RATE, channels) as b:
            for p in pk[:k - 1]:
                a.decode(p)
                b.decode(p)
            flags.append(carries_lbrr(pk[k]))
            fec_differs.append(not np.array_equal(a.decode_fec(pk[k], n), b.conceal(n)))
    assert flags == fec_differs
    assert any(flags) and not all(flags)  # both kinds were checked


@pytest.mark.parametrize("channels", [1, 2])
def test_fec_on_carries_lbrr_from_the_second_packet(channels: int) -> None:
    pk = packets(fec=True, channels=channels, count=10)
    assert [carries_lbrr(p) for p in pk[:4]] == [False, True, True, True]


@pytest.mark.parametrize("channels,frame_ms,bitrate", [
    (1, 20, 32_000), (2, 20, 32_000), (1, 60, 32_000), (1, 10, 32_000), (1, 20, 64_000)])
def test_fec_off_never_carries_lbrr(channels: int, frame_ms: int, bitrate: int) -> None:
    pk = packets(fec=False, channels=channels, frame_ms=frame_ms, bitrate=bitrate)
    assert not any(carries_lbrr(p) for p in pk)


def test_celt_only_packets_never_carry_lbrr() -> None:
    pk = packets(fec=False, bitrate=96_000)  # libopus picks CELT-only here
    assert all(p[0] >> 3 >= 16 for p in pk[5:])
    assert not any(carries_lbrr(p) for p in pk)
    assert silk_frames(pk[-1][0]) == 0
    # CELT-only with the first data bit set, by hand: still no LBRR
    assert not carries_lbrr(bytes([16 << 3, 0xFF, 0xFF]))


def test_frames_are_found_in_every_packet_code() -> None:
    toc = 15 << 3  # hybrid, 20 ms, mono
    frame = bytes([0x40, 1, 2])  # LBRR bit (bit 6 with one SILK frame) set
    assert first_frame(bytes([toc]) + frame) == frame  # code 0
    assert first_frame(bytes([toc | 1]) + frame + frame) == frame  # code 1
    assert first_frame(bytes([toc | 2, 3]) + frame + b"\x00\x00") == frame  # code 2
    # code 3: VBR, padding flag, 2 frames, 2 bytes of padding
    assert first_frame(bytes([toc | 3, 0xC2, 2, 3]) + frame + b"\x00" + b"\x00\x00") == frame
    assert all(carries_lbrr(p) for p in (
        bytes([toc]) + frame, bytes([toc | 1]) + frame + frame,
        bytes([toc | 3, 0xC2, 2, 3]) + frame + b"\x00" + b"\x00\x00"))
    assert not carries_lbrr(bytes([toc | 2, 3]) + b"\x00\x01\x02" + frame)
    # stereo: the side channel's flag, bit 6 - 2 (mid VAD, mid LBRR, side VAD, side LBRR)
    assert carries_lbrr(bytes([toc | 4, 0x10]))
    assert not carries_lbrr(bytes([toc, 0x10]))  # in a mono packet it is not a flag


def test_bad_packets_carry_nothing_and_are_named() -> None:
    assert not carries_lbrr(b"")
    assert not carries_lbrr(bytes([15 << 3 | 3]))  # code 3 without its count byte
    with pytest.raises(OpusError, match="opus packet of 1 bytes"):
        first_frame(bytes([15 << 3 | 3]))
    assert not carries_lbrr(bytes([15 << 3 | 3, 0]))  # zero frames

"""G.711 and G.722 in the room's audio path, without a server: the send encoder and the
decoder against each other and against FFmpeg's own coders, the jitter buffer playing
G.711 through loss, and the packet tap telling the codec by payload type."""

from __future__ import annotations

import random
from fractions import Fraction
from itertools import pairwise

import av
import numpy as np
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from services.audio.narrowband import NarrowbandDecoder, audio_decoder, rtp_scale
from services.audio.opus import OpusDecoder
from services.room.jitter import JitterBuffer
from services.room.mixer import follow_codec
from services.room.narrowband_send import NarrowbandSendEncoder
from services.room.rtc import PacketTap
from tests.harness.audio import dominant_hz
from tests.harness.playout import play_trace

RATE = 48_000
FRAME = 960
CODECS = ("pcmu", "pcma", "g722")
FFMPEG = {"pcmu": ("pcm_mulaw", 8000), "pcma": ("pcm_alaw", 8000), "g722": ("g722", 16000)}


def tone(n: int, hz: float = 700.0, start: int = 0, rate: int = RATE) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def level(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def ffmpeg_packets(codec: str, seconds: float = 1.0) -> list[bytes]:
    """20 ms packets of a 700 Hz tone made by FFmpeg's own encoder at the codec's rate."""
    name, rate = FFMPEG[codec]
    ctx = av.CodecContext.create(name, "w")
    ctx.format, ctx.layout, ctx.sample_rate = "s16", "mono", rate  # type: ignore[attr-defined]
    ctx.time_base = Fraction(1, rate)
    n = rate // 50
    x = tone(int(rate * seconds), rate=rate)
    out: list[bytes] = []
    for i in range(len(x) // n):
        frame = av.AudioFrame.from_ndarray(x[i * n:(i + 1) * n].reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate, frame.pts = rate, i * n
        out += [bytes(p) for p in ctx.encode(frame)]  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_ffmpegs_packets_decode_to_the_tone_at_48_khz(codec: str) -> None:
    packets = ffmpeg_packets(codec)
    decoder = audio_decoder(codec.upper())
    assert isinstance(decoder, NarrowbandDecoder) and not decoder.opus
    blocks = [decoder.decode(p) for p in packets]
    # one 20 ms packet gives 20 ms at 48 kHz (the first a little less: the resampler's
    # filter delay, once)
    assert FRAME - 120 <= len(blocks[0]) <= FRAME
    assert {len(b) for b in blocks[1:]} == {FRAME}
    out = np.concatenate(blocks)[RATE // 10:]
    assert abs(dominant_hz(out.astype(np.float64) / 32768) - 700) < 5
    assert level(out) == pytest.approx(8000 / np.sqrt(2), rel=0.05)  # within 0.5 dB
    assert len(decoder.conceal(FRAME)) == FRAME and not decoder.conceal(FRAME).any()
    decoder.close()
    with pytest.raises(RuntimeError):
        decoder.decode(packets[0])


@pytest.mark.parametrize("codec", CODECS)
def test_the_send_encoder_makes_20_ms_packets_ffmpeg_decodes(codec: str) -> None:
    encoder = NarrowbandSendEncoder(codec)
    x = tone(RATE)
    sent = [p for i in range(50) for p in encoder.encode(x[i * FRAME:(i + 1) * FRAME].tobytes())]
    # the resampler holds the first block back; every packet after it is 20 ms
    assert len(sent) == 49
    assert [p.pts for p in sent[:3]] == [0, 960, 1920]
    assert {len(p.data) for p in sent} == {160}  # 8 bits a sample at 8 kHz; G.722 64 kbit/s
    assert all(0 < p.level < 127 for p in sent)
    name, rate = FFMPEG[codec]
    ctx = av.CodecContext.create(name, "r")
    ctx.format, ctx.layout, ctx.sample_rate = "s16", "mono", rate  # type: ignore[attr-defined]
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for p in sent
                          for f in ctx.decode(av.Packet(p.data))])  # type: ignore[attr-defined]
    assert len(pcm) == 49 * rate // 50
    assert abs(dominant_hz_at(pcm[rate // 10:], rate) - 700) < 5
    assert level(pcm[rate // 10:]) == pytest.approx(8000 / np.sqrt(2), rel=0.05)
    assert encoder.stats == {"codec": codec, "packets": 49, "bytes": 49 * 160}
    # any length in: the packets still come out 20 ms apart
    odd = NarrowbandSendEncoder(codec)
    pts = [p.pts for chunk in np.array_split(x, 37) for p in odd.encode(chunk.tobytes())]
    assert pts == list(range(0, len(pts) * FRAME, FRAME)) and len(pts) >= 48


def dominant_hz_at(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def test_rtp_scale() -> None:
    assert rtp_scale(8000) == 6 and rtp_scale(16000) == 3 and rtp_scale(48000) == 1
    with pytest.raises(ValueError, match="does not divide"):
        rtp_scale(44100)
    with pytest.raises(ValueError, match=r"not a G\.711 or G\.722 codec"):
        audio_decoder("isac")


def test_a_lossy_g711_voice_plays_through_the_jitter_buffer() -> None:
    """10 % loss: each gap is concealed by the jitter buffer's own repetition (G.711 has
    no FEC and no PLC of its own), and no G.711 byte is ever taken for Opus FEC."""
    encoder = NarrowbandSendEncoder("pcmu")
    x = tone(RATE * 10)
    packets = [p.data for i in range(500)
               for p in encoder.encode(x[i * FRAME:(i + 1) * FRAME].tobytes())]
    rng = random.Random(7)
    arrivals = [(0.002 + i * 0.02, i) for i in range(len(packets))
                if i < 5 or rng.random() >= 0.10]
    run = play_trace(packets, arrivals, 9.5, frame=FRAME, pull=FRAME, ts_base=1000,
                     decoder=lambda: NarrowbandDecoder("pcmu"))
    buf = run.buf
    assert buf.lost >= 30 and buf.fec == 0
    assert buf.stats()["plc_replaced"] >= 30  # repeated, not silence
    out = run.out[RATE // 2:].astype(np.float64)
    n = len(out) // FRAME
    rms = np.sqrt((out[: n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1))
    assert (rms >= 8000 / np.sqrt(2) / 2).mean() > 0.97  # within 6 dB of the tone
    assert abs(dominant_hz(out / 32768) - 700) < 5


def test_the_tap_names_the_codec_and_scales_its_clock() -> None:
    codecs = {0: RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, payloadType=0),
              111: RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                                         payloadType=111)}
    tap = PacketTap(128, codecs)
    got: list[tuple[int, int, bytes]] = []
    told: list[str] = []
    tap.sink = lambda seq, ts, data, arrival: got.append((seq, ts, data))
    tap.on_codec = told.append

    def packet(pt: int, seq: int, ts: int) -> RtpPacket:
        p = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, payload=b"x")
        p._data = b"x"  # type: ignore[attr-defined]
        return p

    for seq in range(3):
        tap.add(packet(0, seq, 0xFFFFFF00 + 160 * seq))  # wraps past 2**32 at 8 kHz
    assert told == ["pcmu"] and tap.codec == "pcmu"
    assert [ts for _, ts, _ in got] == [(6 * (0xFFFFFF00 + 160 * s)) & 0xFFFFFFFF
                                        for s in range(3)]
    # differences stay 960 across the wrap, as the jitter buffer unwraps them
    assert all((b - a) & 0xFFFFFFFF == 960 for (_, a, _), (_, b, _) in pairwise(got))
    tap.add(packet(111, 3, 5000))
    assert told == ["pcmu", "opus"] and got[-1][1] == 5000


def test_a_buffer_follows_its_taps_codec() -> None:
    tap = PacketTap(128)
    tap.codec = "g722"  # learned before this buffer was made (a member rebound)
    buf = JitterBuffer()
    follow_codec(tap, buf)
    assert isinstance(buf._decoder, NarrowbandDecoder) and buf._decoder.codec == "g722"
    assert tap.on_codec is not None
    tap.on_codec("opus")
    assert isinstance(buf._decoder, OpusDecoder)
    tap.on_codec("isac")  # not one the box decodes: that voice is dropped, not noise
    assert tap.sink is None
    buf.close()

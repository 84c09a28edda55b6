"""The room's mic track sends Opus packets it encoded itself, with in-band FEC planned
for the loss the room server reports.

Packets are decoded with libopus (services.audio.opus); receiver reports go through the
RTCP wire format into a real aiortc sender; aiortc's own send step packs the packets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from fractions import Fraction

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters
from aiortc.mediastreams import MediaStreamError

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from services.audio.opus import (
    OPUS_GET_COMPLEXITY_REQUEST,
    OPUS_GET_DTX_REQUEST,
    OPUS_GET_INBAND_FEC_REQUEST,
    OPUS_GET_PACKET_LOSS_PERC_REQUEST,
    OpusDecoder,
    packet_samples,
)
from services.room.mixer import RemoteAudioMixer
from services.room.opus_send import OpusSendEncoder, OpusSendSettings, audio_level
from services.room.stats import StatsCollector
from services.room.tracks import MicTrack
from tests.room.test_stats import receiver_report

T = 10.0
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                             payloadType=111)


class ScriptedMic:
    """A mic whose frames are cut from ``signal`` (mono int16), 20 ms at a time."""

    def __init__(self, signal: np.ndarray, frame: int = FRAME_SAMPLES, channels: int = 1):
        self.signal = signal
        self.frame = frame
        self.channels = channels
        self.reads = 0

    async def start(self) -> None: ...

    async def read(self) -> PcmFrame:
        start = (self.reads * self.frame) % len(self.signal)
        chunk = self.signal[start:start + self.frame]
        if self.channels > 1:
            chunk = np.repeat(chunk, self.channels)
        self.reads += 1
        await asyncio.sleep(0)
        return PcmFrame(chunk.astype(np.int16).tobytes(), self.reads * 0.02, self.reads,
                        SAMPLE_RATE, self.channels)

    def set_gain(self, percent: int) -> None: ...

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": self.reads}

    async def stop(self) -> None: ...


class Gate:
    def __init__(self) -> None:
        self.value = (True, True, 100)

    def __call__(self) -> tuple[bool, bool, int]:
        return self.value


def tone(freq: float = 440.0, seconds: float = 1.0, amp: float = 20000.0) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms_dbfs(x: np.ndarray) -> float:
    power = float(np.mean(x.astype(np.float64) ** 2))
    return 10 * np.log10(max(power, 1e-9) / 32768.0 ** 2)


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await asyncio.wait_for(pc.close(), T)


async def packets(track: MicTrack, n: int) -> list:
    return [await asyncio.wait_for(track.recv(), T) for _ in range(n)]


@pytest.mark.parametrize("channels", [1, 2])
async def test_mic_track_sends_opus_that_decodes_to_the_tone(channels: int) -> None:
    mic = ScriptedMic(tone(), channels=channels)
    track = MicTrack(mic, Gate())
    got = await packets(track, 50)
    assert [p.pts for p in got] == [i * FRAME_SAMPLES for i in range(50)]
    assert all(p.time_base == Fraction(1, SAMPLE_RATE) for p in got)
    assert all(packet_samples(bytes(p)) == FRAME_SAMPLES for p in got)
    assert 0 < sum(len(bytes(p)) for p in got) * 8 / 1000 <= 40  # kbit in 1 s (32 kbps)
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(bytes(p)) for p in got])
    steady = pcm[SAMPLE_RATE // 4:]
    assert abs(peak_hz(steady) - 440.0) < 5.0
    assert abs(rms_dbfs(steady) - rms_dbfs(tone())) < 1.0
    assert track.last_audio_level == audio_level(tone()[:FRAME_SAMPLES]) == 7  # -7 dBov
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(track.recv(), T)


async def test_mute_and_volume_reach_the_encoded_sound() -> None:
    gate = Gate()
    track = MicTrack(ScriptedMic(tone()), gate)
    decoder = OpusDecoder()

    async def level(n: int = 15) -> float:
        pcm = [decoder.decode(bytes(p)) for p in await packets(track, n)]
        return rms_dbfs(np.concatenate(pcm[-5:]))

    loud = await level()
    gate.value = (True, True, 50)
    assert abs(await level() - (loud - 6.0)) < 1.0
    gate.value = (True, False, 100)
    assert await level() < -80.0
    assert track.last_audio_level == 127
    track.stop()


async def test_ten_ms_frames() -> None:
    mic = ScriptedMic(tone())
    track = MicTrack(mic, Gate(), OpusSendSettings(frame_ms=10))
    got = await packets(track, 100)
    assert mic.reads == 50  # each 20 ms mic frame makes two packets
    assert [p.pts for p in got] == [i * 480 for i in range(100)]
    assert all(packet_samples(bytes(p)) == 480 for p in got)
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(bytes(p)) for p in got])
    assert len(pcm) == SAMPLE_RATE
    assert abs(peak_hz(pcm[SAMPLE_RATE // 4:]) - 440.0) < 5.0
    assert abs(rms_dbfs(pcm[SAMPLE_RATE // 4:]) - rms_dbfs(tone())) < 1.0
    track.stop()


async def test_the_packets_of_one_mic_frame_are_spaced_out() -> None:
    track = MicTrack(ScriptedMic(tone()), Gate(), OpusSendSettings(frame_ms=10))
    asked, got = [], []
    for _ in range(6):
        asked.append(time.monotonic())
        await asyncio.wait_for(track.recv(), T)
        got.append(time.monotonic())
    # The second packet of each 20 ms frame waits 10 ms after the frame was read, which
    # happened after the first packet was asked for (never a burst). Measured from the
    # ask, not from when this loop woke up, so a late wake-up cannot fail it.
    gaps = [got[i + 1] - asked[i] for i in (0, 2, 4)]
    assert all(gap >= 0.0095 for gap in gaps), gaps
    track.stop()


async def test_ten_ms_mic_frames_make_twenty_ms_packets() -> None:
    mic = ScriptedMic(tone(), frame=480)
    track = MicTrack(mic, Gate())
    got = await packets(track, 10)
    assert mic.reads == 20 and [p.pts for p in got] == [i * 960 for i in range(10)]
    track.stop()


def onset() -> np.ndarray:
    """Half a second of silence, then a tone: a packet lost at the onset cannot be
    guessed by concealment (which extends the silence before it), only rebuilt from the
    FEC data of the packet after it."""
    signal = tone(seconds=1.0, amp=12000)
    signal[:25 * FRAME_SAMPLES] = 0
    return signal


def recovered_dbfs(payloads: list[bytes], lost: int) -> float:
    decoder = OpusDecoder()
    for payload in payloads[:lost]:
        decoder.decode(payload)
    return rms_dbfs(decoder.decode_fec(payloads[lost + 1], FRAME_SAMPLES))


async def test_fec_follows_the_loss_the_receiver_reports(
        pcs: list[RTCPeerConnection]) -> None:
    pc = RTCPeerConnection()
    pcs.append(pc)
    track = MicTrack(ScriptedMic(onset()), Gate(), OpusSendSettings(fec=True))
    sender = pc.addTrack(track)
    encoder = track.encoder.encoder
    assert encoder.get(OPUS_GET_INBAND_FEC_REQUEST) == 1
    assert encoder.get(OPUS_GET_DTX_REQUEST) == 0
    assert encoder.get(OPUS_GET_PACKET_LOSS_PERC_REQUEST) == 0
    # no loss reported: no FEC data is spent, a lost onset stays silent
    quiet = [bytes(p) for p in await packets(track, 50)]
    assert recovered_dbfs(quiet, 25) < -60.0

    await receiver_report(sender, fraction_lost=26, packets_lost=5)  # 10.2 %
    assert encoder.get(OPUS_GET_PACKET_LOSS_PERC_REQUEST) == 10
    assert track.encoder.stats["expected_loss_pct"] == 10
    up = (await asyncio.wait_for(StatsCollector().collect(
        {"publisher": pc}, {}, RemoteAudioMixer(None), {}), T))["up"]
    assert up["fec_expected_loss_pct"] == 10 and up["loss_pct"] == 10.2
    protected = [bytes(p) for p in await packets(track, 50)]
    assert recovered_dbfs(protected, 25) > rms_dbfs(onset()[-FRAME_SAMPLES:]) - 6.0

    await receiver_report(sender, fraction_lost=0, packets_lost=5)
    assert encoder.get(OPUS_GET_PACKET_LOSS_PERC_REQUEST) == 0
    # a report about another stream changes nothing
    await receiver_report(sender, fraction_lost=255, packets_lost=5)
    assert encoder.get(OPUS_GET_PACKET_LOSS_PERC_REQUEST) == 50  # capped
    track.stop()


async def test_aiortc_packs_the_packets_as_they_are(pcs: list[RTCPeerConnection]) -> None:
    pc = RTCPeerConnection()
    pcs.append(pc)
    track = MicTrack(ScriptedMic(tone()), Gate())
    sender = pc.addTrack(track)
    for i in range(3):
        frame = await asyncio.wait_for(sender._next_encoded_frame(OPUS), T)
        assert frame is not None and frame.timestamp == i * FRAME_SAMPLES
        assert len(frame.payloads) == 1
        assert packet_samples(frame.payloads[0]) == FRAME_SAMPLES
        # aiortc writes -audio_level into the RFC 6464 header extension
        assert frame.audio_level == -7
    assert track.encoder.packets == 3
    track.stop()


async def test_dtx_only_when_configured() -> None:
    silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
    plain = MicTrack(ScriptedMic(silence), Gate())
    got = await packets(plain, 60)
    assert [p.pts for p in got] == [i * FRAME_SAMPLES for i in range(60)]
    plain.stop()

    mic = ScriptedMic(silence)
    dtx = MicTrack(mic, Gate(), OpusSendSettings(dtx=True))
    assert dtx.encoder.encoder.get(OPUS_GET_DTX_REQUEST) == 1
    got = await packets(dtx, 14)
    assert mic.reads > 3 * len(got)  # most silent frames are not sent at all
    assert dtx.encoder.stats["dtx_skipped"] > 0
    steps = np.diff([p.pts for p in got])
    assert steps.max() > FRAME_SAMPLES and (steps % FRAME_SAMPLES == 0).all()
    dtx.stop()


def test_settings_refuse_other_frame_lengths() -> None:
    with pytest.raises(ValueError, match="frame_ms must be 10 or 20"):
        OpusSendSettings(frame_ms=40)
    with pytest.raises(ValueError, match="opus_bitrate_kbps"):
        OpusSendSettings(bitrate_kbps=2)
    with pytest.raises(ValueError, match="opus_complexity must be 0"):
        OpusSendSettings(complexity=11)


def test_the_encoder_runs_at_the_configured_complexity() -> None:
    """libopus is asked for complexity 9 (its own default) unless told otherwise,
    and FEC data still comes out of the cheaper encoder once loss is reported."""
    plain = OpusSendEncoder()
    assert plain.encoder.get(OPUS_GET_COMPLEXITY_REQUEST) == 9
    plain.close()
    fec = OpusSendEncoder(OpusSendSettings(complexity=2, fec=True))
    assert fec.encoder.get(OPUS_GET_COMPLEXITY_REQUEST) == 2
    fec.set_expected_loss(20)
    packets = list(fec.encode(tone(seconds=1.0).tobytes()))
    decoder = OpusDecoder(SAMPLE_RATE, 1)
    # a packet with FEC data rebuilds the frame before it; one without gives silence-like PLC
    rebuilt = decoder.decode_fec(packets[-1].data, FRAME_SAMPLES)
    assert np.abs(rebuilt.astype(np.int32)).max() > 1000
    fec.close()


async def test_the_rtp_level_is_the_one_the_mic_path_measured() -> None:
    """Through the mic tee (which measures every frame's level for the meter), packets
    carry that level, moved by the volume; muted is silence; a playback mixed into the
    frame is measured again."""
    from services.media.audio import MicTee

    signal = tone(amp=8000.0)
    mic = ScriptedMic(signal)
    tee = MicTee(lambda: mic)
    branch = tee.branch("room")
    await branch.start()
    gate = Gate()
    mixing = {"on": False}

    def mix(samples: bytes) -> bytes:
        if not mixing["on"]:
            return samples
        return (np.frombuffer(samples, np.int16) // 4).astype(np.int16).tobytes()

    track = MicTrack(branch, gate, mix=mix)
    computed = audio_level(signal[:FRAME_SAMPLES])
    try:
        await packets(track, 3)
        assert tee.level_dbfs == pytest.approx(rms_dbfs(signal[:FRAME_SAMPLES]), abs=0.1)
        assert track.last_audio_level == computed == 15
        gate.value = (True, True, 50)
        await packets(track, 2)
        assert track.last_audio_level == computed + 6  # half the amplitude: 6 dB down
        gate.value = (True, False, 100)
        await packets(track, 2)
        assert track.last_audio_level == 127
        gate.value = (True, True, 100)
        mixing["on"] = True
        await packets(track, 2)
        assert track.last_audio_level == computed + 12  # measured on what was sent
    finally:
        track.stop()
        await tee.close()


async def test_a_level_measured_upstream_is_not_measured_again() -> None:
    class MeasuredMic(ScriptedMic):
        async def read(self) -> PcmFrame:
            frame = await super().read()
            return PcmFrame(frame.samples, frame.captured_at, frame.index,
                            level_dbfs=-30.2)

    track = MicTrack(MeasuredMic(tone(amp=8000.0)), Gate())
    try:
        await packets(track, 2)
        assert track.last_audio_level == 30  # the mic path's figure, not the samples' 15
    finally:
        track.stop()

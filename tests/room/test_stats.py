"""Room statistics from aiortc's real RTCP and RTP objects: loss in percent, lost packets.

The server's receiver report goes through the wire format (serialised and parsed again)
into a real aiortc sender; RTP packets go into a real aiortc receiver with the audio
receive path this appliance installs on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpparameters import RTCRtpDecodingParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtcpPacket, RtcpReceiverInfo, RtcpRrPacket, RtpPacket

from services.audio.opus import OpusEncoder
from services.room.jitter import JitterBuffer
from services.room.mixer import RemoteAudioMixer
from services.room.rtc import tap_audio_packets
from services.room.stats import StatsCollector, loss_percent
from tests.harness.clock import Clock

T = 10.0
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                             payloadType=111)
REMOTE_SSRC = 5555


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await asyncio.wait_for(pc.close(), T)


async def receiver_report(sender: Any, fraction_lost: int, packets_lost: int) -> None:
    """What the server reports about our stream, parsed from its wire bytes."""
    report = RtcpRrPacket(ssrc=99, reports=[RtcpReceiverInfo(
        ssrc=sender._ssrc, fraction_lost=fraction_lost, packets_lost=packets_lost,
        highest_sequence=1000, jitter=100, lsr=0, dlsr=0)])
    for packet in RtcpPacket.parse(bytes(report)):
        await asyncio.wait_for(sender._handle_rtcp_packet(packet), T)


async def collect(pcs: dict[str, Any], receivers: dict[str, list[Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(
        StatsCollector().collect(pcs, receivers, RemoteAudioMixer(None), {}), T)


def test_loss_percent_reads_the_rtcp_byte() -> None:
    assert loss_percent(0) == 0.0
    assert loss_percent(None) == 0.0
    assert loss_percent(13) == 5.1  # 13/256
    assert loss_percent(26) == 10.2
    assert loss_percent(255) == 99.6
    assert loss_percent(-1) == 0.0


@pytest.mark.parametrize(("byte", "pct"), [(0, 0.0), (13, 5.1), (26, 10.2), (128, 50.0)])
async def test_upload_loss_is_a_percentage(pcs: list[RTCPeerConnection], byte: int,
                                           pct: float) -> None:
    pc = RTCPeerConnection()
    pcs.append(pc)
    sender = pc.addTrack(AudioStreamTrack())
    await receiver_report(sender, fraction_lost=byte, packets_lost=42)
    up = (await collect({"publisher": pc}, {}))["up"]
    assert up["loss_pct"] == pct
    assert up["packets_lost"] == 42


async def test_member_lost_counts_missing_and_late_packets(
        pcs: list[RTCPeerConnection]) -> None:
    pc = RTCPeerConnection()
    pcs.append(pc)
    receiver = pc.addTransceiver("audio", direction="recvonly").receiver
    # What the peer connection does when the remote description names the track.
    receiver._track = RemoteStreamTrack(kind="audio")
    tap = tap_audio_packets(receiver)
    assert tap is not None
    await asyncio.wait_for(receiver.receive(RTCRtpReceiveParameters(
        codecs=[OPUS], encodings=[RTCRtpDecodingParameters(ssrc=REMOTE_SSRC,
                                                           payloadType=111)])), T)
    encoder = OpusEncoder(bitrate=32000)
    tone = (np.sin(np.arange(960) * 2 * np.pi * 440 / 48000) * 12000).astype(np.int16)
    payload = encoder.encode(tone)
    encoder.close()
    try:
        # The network loses 8 and 13: aiortc counts them from the sequence numbers.
        for seq in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15):
            packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960,
                               ssrc=REMOTE_SSRC, payload=payload)
            packet._data = payload
            await asyncio.wait_for(receiver._handle_rtp_packet(packet, seq * 20), T)
        # Then the member's jitter buffer, on a simulated clock, plays 20 ms a pull while
        # packet 30 comes 300 ms after its turn: dropped as late, so lost to the listener.
        clock = Clock()
        mixer = RemoteAudioMixer(None, buffer_factory=lambda: JitterBuffer(clock=clock))
        mixer.add_track("m1", receiver.track)
        assert tap.sink is not None
        order = sorted((i * 0.02 + (0.3 if i == 30 else 0.0), i) for i in range(16, 160))
        pull_at = 16 * 0.02 + 0.003
        for arrival, seq in order:
            while pull_at < arrival:
                clock.now = pull_at
                mixer.pull()
                pull_at += 0.02
            clock.now = arrival
            tap.sink(seq, seq * 960, payload, arrival)
        late = mixer.source_stats()["m1"]["late"]
        assert late >= 1
        member = (await asyncio.wait_for(StatsCollector().collect(
            {}, {"m1": [receiver]}, mixer, {}), T))["members"]["m1"]
        assert member["packets_lost"] == 2 + late
        assert member["late"] == late
    finally:
        await asyncio.wait_for(receiver.stop(), T)


async def test_the_speakers_counters_are_in_the_stats(tmp_path: Any) -> None:
    from drivers.audio.sim import SimSpeaker

    speaker = SimSpeaker(tmp_path / "speaker.wav")
    stats = await asyncio.wait_for(
        StatsCollector().collect({}, {}, RemoteAudioMixer(speaker), {}), T)
    assert stats["speaker"] == speaker.stats and "underruns" in stats["speaker"]
    assert (await collect({}, {}))["speaker"] is None  # no speaker at all

"""Room statistics from aiortc's real RTCP and RTP objects: loss in percent, lost packets.

The server's receiver report goes through the wire format (serialised and parsed again)
into a real aiortc sender; RTP packets go into a real aiortc receiver with the audio
receive path this appliance installs on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpparameters import RTCRtpDecodingParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtcpPacket, RtcpReceiverInfo, RtcpRrPacket, RtpPacket

from services.room.mixer import RemoteAudioMixer
from services.room.rtc import shorten_audio_jitter_buffer
from services.room.stats import StatsCollector, loss_percent

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
    assert shorten_audio_jitter_buffer(receiver)
    await asyncio.wait_for(receiver.receive(RTCRtpReceiveParameters(
        codecs=[OPUS], encodings=[RTCRtpDecodingParameters(ssrc=REMOTE_SSRC,
                                                           payloadType=111)])), T)
    try:
        # 8 and 13 never arrive; 4 arrives after 6 and 11 after 12 (too late to play).
        for seq in (1, 2, 3, 5, 6, 4, 7, 9, 10, 12, 11, 14, 15):
            packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960,
                               ssrc=REMOTE_SSRC, payload=b"\xf8\xff\xfe")
            packet._data = bytes(packet.payload)
            await asyncio.wait_for(receiver._handle_rtp_packet(packet, seq * 20), T)
        member = (await collect({}, {"m1": [receiver]}))["members"]["m1"]
        assert member["packets_lost"] == 4
    finally:
        await asyncio.wait_for(receiver.stop(), T)

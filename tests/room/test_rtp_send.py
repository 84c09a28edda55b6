"""The frame-at-a-time RTP sender: what reaches the socket is what aiortc would send.

A real aiortc ``RTCRtpSender`` made a :class:`FrameRtpSender`, on a real DTLS transport
object whose SRTP session is keyed by the test, sends through a real UDP socket on
127.0.0.1; the test unprotects every datagram with the matching SRTP session and parses it
with aiortc's own RTP parser.
"""

from __future__ import annotations

import asyncio
import fractions
import os
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import av
import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCRtpCodecParameters,
    RTCRtpSender,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import (
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpRtpfbPacket,
    RtpPacket,
    is_rtcp,
    unwrap_rtx,
)
from pylibsrtp import Policy, Session

from services.room.rtp_send import FrameRtpSender, send_frames

T = 10.0
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(
        id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
]
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
RTX = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97,
                            parameters={"apt": 96})
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                             payloadType=111)


class Packets(MediaStreamTrack):
    """Hands out the given ``av.Packet``s, then ends."""

    def __init__(self, kind: str, packets: list[tuple[bytes, int, int | None]],
                 time_base: fractions.Fraction) -> None:
        super().__init__()
        self.kind = kind
        self._items = list(packets)
        self._time_base = time_base
        self.last_audio_level: int | None = None

    async def recv(self) -> av.Packet:
        if not self._items:
            await asyncio.sleep(0.2)
            raise MediaStreamError
        data, pts, level = self._items.pop(0)
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        self.last_audio_level = level
        return packet


class Pair:
    """The shape aioice gives a nominated candidate pair: ``protocol.transport`` is the
    datagram socket, ``protocol.send_data`` what aiortc's own path (RTCP) calls."""

    def __init__(self, transport: asyncio.DatagramTransport, remote_addr: Any) -> None:
        self.protocol = SimpleNamespace(transport=transport, send_data=self._send_data)
        self.remote_addr = remote_addr

    async def _send_data(self, data: bytes, addr: Any) -> None:
        self.protocol.transport.sendto(data, addr)


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.put_nowait(data)


@pytest.fixture
async def wire() -> AsyncIterator[tuple[RTCDtlsTransport, Session, Receiver, Any]]:
    """A DTLS transport as after its handshake (SRTP keyed, ICE pair nominated) whose
    packets go to a UDP socket on 127.0.0.1; the SRTP session that opens them."""
    loop = asyncio.get_running_loop()
    key = os.urandom(30)
    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                            [RTCCertificate.generateCertificate()])
    receiver = Receiver()
    rx_transport, _ = await loop.create_datagram_endpoint(lambda: receiver,
                                                          local_addr=("127.0.0.1", 0))
    tx_transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                          local_addr=("127.0.0.1", 0))
    dtls._tx_srtp = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    dtls._state = State.CONNECTED
    # what aioice records once a candidate pair is nominated
    dtls.transport._connection._nominated[1] = Pair(tx_transport,
                                                   rx_transport.get_extra_info("sockname"))
    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    try:
        yield dtls, rx, receiver, tx_transport
    finally:
        rx_transport.close()
        tx_transport.close()


async def rtp_packets(rx: Session, receiver: Receiver, n: int,
                      extensions: HeaderExtensionsMap) -> list[RtpPacket]:
    got = []
    while len(got) < n:
        data = await asyncio.wait_for(receiver.datagrams.get(), T)
        if is_rtcp(data):
            continue
        got.append(RtpPacket.parse(rx.unprotect(data), extensions))
    return got


def parameters(codecs: list[RTCRtpCodecParameters]) -> RTCRtpSendParameters:
    return RTCRtpSendParameters(codecs=codecs, headerExtensions=EXTENSIONS, muxId="7",
                                rtcp=RTCRtcpParameters(cname="box"))


def extension_map(codecs: list[RTCRtpCodecParameters]) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters(codecs))
    return extensions


async def test_video_frames_go_out_as_aiortc_packs_them(wire: Any) -> None:
    dtls, rx, receiver, _ = wire
    frames = [(bytes([0x10 + n]) * 3000, 3000 * n, None) for n in range(3)]
    track = Packets("video", frames, fractions.Fraction(1, 90000))
    sender = send_frames(RTCRtpSender(track, dtls))
    assert isinstance(sender, FrameRtpSender)
    await sender.send(parameters([VP8, RTX]))
    extensions = extension_map([VP8, RTX])
    try:
        packets = await rtp_packets(rx, receiver, 9, extensions)
    finally:
        await sender.stop()

    # what aiortc's own VP8 packetizer makes of the same frames
    from aiortc.codecs import get_encoder
    expected = []
    packer = get_encoder(VP8)
    for data, pts, _ in frames:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = fractions.Fraction(1, 90000)
        payloads, _ = packer.pack(packet)
        expected.append(payloads)
    assert [len(p) for p in expected] == [3, 3, 3]
    def without_picture_id(payload: bytes) -> bytes:  # each packer starts at a random one
        return payload[:2] + payload[4:]

    assert ([without_picture_id(p.payload) for p in packets]
            == [without_picture_id(x) for payloads in expected for x in payloads])
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(9)]
    assert {p.ssrc for p in packets} == {sender._ssrc}
    assert {p.payload_type for p in packets} == {96}
    assert [p.marker for p in packets] == [0, 0, 1] * 3  # the last packet of each frame
    stamps = [p.timestamp for p in packets]
    assert stamps[0] == stamps[2] and (stamps[3] - stamps[0]) & 0xFFFFFFFF == 3000
    for p in packets:
        assert p.extensions.mid == "7"
        assert p.extensions.abs_send_time is not None
        assert p.extensions.audio_level is None
    assert sender.direct_packets == 9
    stats = await sender.getStats()
    outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
    assert outbound.packetsSent == 9
    assert outbound.bytesSent == sum(len(p.payload) for p in packets)


async def test_nacked_packets_are_sent_again_as_rtx(wire: Any) -> None:
    dtls, rx, receiver, _ = wire
    track = Packets("video", [(b"\x55" * 2500, 0, None)], fractions.Fraction(1, 90000))
    sender = send_frames(RTCRtpSender(track, dtls))
    await sender.send(parameters([VP8, RTX]))
    extensions = extension_map([VP8, RTX])
    try:
        _, second = await rtp_packets(rx, receiver, 2, extensions)
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc)
        nack.lost = [second.sequence_number, (second.sequence_number + 500) & 0xFFFF]
        await sender._handle_rtcp_packet(nack)
        (rtx,) = await rtp_packets(rx, receiver, 1, extensions)
    finally:
        await sender.stop()
    assert rtx.payload_type == 97 and rtx.ssrc == sender._rtx_ssrc
    again = unwrap_rtx(rtx, payload_type=96, ssrc=sender._ssrc)
    assert again.sequence_number == second.sequence_number
    assert again.payload == second.payload
    assert receiver.datagrams.empty() or all(is_rtcp(d) for d in receiver.datagrams._queue)


async def test_audio_packets_carry_the_tracks_level(wire: Any) -> None:
    dtls, rx, receiver, _ = wire
    from services.room.opus_send import install_audio_sender_hooks

    install_audio_sender_hooks()
    items = [(b"\xf8" + bytes(60), 960 * n, level) for n, level in enumerate((3, 40, 127))]
    sender = send_frames(RTCRtpSender(Packets("audio", items, fractions.Fraction(1, 48000)),
                                      dtls))
    await sender.send(parameters([OPUS]))
    try:
        packets = await rtp_packets(rx, receiver, 3, extension_map([OPUS]))
    finally:
        await sender.stop()
    assert [p.extensions.audio_level for p in packets] == [(False, 3), (False, 40),
                                                           (False, 127)]
    assert [p.marker for p in packets] == [1, 1, 1]
    assert all(p.payload == b"\xf8" + bytes(60) for p in packets)
    stamps = [p.timestamp for p in packets]
    assert [(s - stamps[0]) & 0xFFFFFFFF for s in stamps] == [0, 960, 1920]


async def test_not_connected_ends_the_sender_quietly(wire: Any) -> None:
    dtls = wire[0]
    track = Packets("video", [(b"\x01" * 100, 0, None)], fractions.Fraction(1, 90000))
    sender = send_frames(RTCRtpSender(track, dtls))
    dtls._state = State.CLOSED
    await sender.send(parameters([VP8]))
    await asyncio.sleep(0.3)
    await asyncio.wait_for(sender.stop(), T)
    assert sender.frames_sent == 0
    assert track.readyState == "ended"

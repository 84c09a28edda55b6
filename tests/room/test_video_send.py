"""The video sent from the encoder's thread, and the SRTP session two threads share.

Real pylibsrtp sessions, keyed by the test, protect and unprotect every packet; a real
aiortc ``RTCRtpSender`` on a DTLS transport object as after its handshake (the ``wire``
fixture of test_rtp_send) sends the shared encoder's VP8 to a UDP socket on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import RtcpPacket, RtpPacket, is_rtcp
from pylibsrtp import Policy, Session

from drivers.camera.sim import SimCamera
from services.media.encoder import SharedVideoEncoder
from services.media.track import EncodedVideoTrack
from services.room.rtp_send import send_frames
from services.room.srtp_lock import LockedSrtpSession, locked_tx_session
from tests.harness.polling import wait_until
from tests.room import test_rtp_send as rtp_send_case
from tests.room.test_rtp_send import VP8, extension_map, parameters

wire = rtp_send_case.wire  # the DTLS transport as after its handshake, and its receiver

T = 10.0


def _rtp(ssrc: int, seq: int, payload: bytes) -> bytes:
    return bytes(RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000,
                           ssrc=ssrc, payload=payload).serialize())


def test_two_threads_protect_through_one_locked_session() -> None:
    key = os.urandom(30)
    locked = LockedSrtpSession(Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)))
    n = 3000
    out: dict[int, list[bytes]] = {1111: [], 2222: []}
    start = threading.Barrier(2)

    def send(ssrc: int) -> None:
        start.wait()
        for seq in range(n):
            # payloads of different lengths: a shared output buffer would mix them up
            out[ssrc].append(locked.protect(_rtp(ssrc, seq, bytes([seq % 251]) * (50 + ssrc % 7
                                                                                 + seq % 300))))
            if seq % 10 == 0:  # RTCP through the same session, as aiortc's reports go
                report = bytes(RtcpPacket.parse(_sr(ssrc, seq))[0])
                out[ssrc].append(locked.protect_rtcp(report))

    threads = [threading.Thread(target=send, args=(ssrc,)) for ssrc in out]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert locked.calls == 2 * (n + n // 10)

    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    for ssrc, datagrams in out.items():
        seq = 0
        for data in datagrams:
            if is_rtcp(data):
                [sr] = RtcpPacket.parse(rx.unprotect_rtcp(data))
                assert sr.ssrc == ssrc
                continue
            packet = RtpPacket.parse(rx.unprotect(data))
            assert (packet.ssrc, packet.sequence_number) == (ssrc, seq)
            assert packet.payload == bytes([seq % 251]) * (50 + ssrc % 7 + seq % 300)
            seq += 1
        assert seq == n


def _sr(ssrc: int, seq: int) -> bytes:
    from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

    return bytes(RtcpSrPacket(ssrc=ssrc, sender_info=RtcpSenderInfo(
        ntp_timestamp=seq << 32, rtp_timestamp=seq * 3000, packet_count=seq,
        octet_count=seq * 100)))


async def test_the_lock_is_installed_once_and_aiortc_rtcp_takes_it(wire: Any) -> None:
    dtls = wire[0]
    bare = dtls._tx_srtp
    locked = locked_tx_session(dtls)
    assert isinstance(locked, LockedSrtpSession) and locked.session is bare
    assert locked_tx_session(dtls) is locked and dtls._tx_srtp is locked
    before = locked.calls
    await dtls._send_rtp(_sr(1234, 1))  # what aiortc's sender and receiver reports call
    assert locked.calls == before + 1


async def _datagrams(receiver: Any, seconds: float) -> list[bytes]:
    got = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            got.append(await asyncio.wait_for(receiver.datagrams.get(), left))
        except TimeoutError:
            break
    return got


async def _settled(check: Callable[[], bool]) -> bool:
    """Whether ``check()``, which another thread moves, held within wait_until's timeout
    (the value seen then: reading it again could race the thread once more)."""
    held = False

    def seen() -> bool:
        nonlocal held
        held = check()
        return held
    with contextlib.suppress(TimeoutError):
        await wait_until(seen)
    return held


async def test_the_encoder_thread_sends_and_stops_with_the_sender(wire: Any) -> None:
    dtls, rx, receiver, _ = wire
    enc = SharedVideoEncoder(lambda: SimCamera(320, 240, 30), bitrate_kbps=300)
    track = EncodedVideoTrack(enc, codec="vp8")
    await enc.start()
    sender = send_frames(RTCRtpSender(track, dtls))
    await sender.send(parameters([VP8]))
    extensions = extension_map([VP8])
    try:
        packets = []
        while len(packets) < 40:
            data = await asyncio.wait_for(receiver.datagrams.get(), T)
            if not is_rtcp(data):
                packets.append(RtpPacket.parse(rx.unprotect(data), extensions))
        sink = sender.rtp_sink
        assert sink is not None and sink.failed is None
        # The frame thread counts a frame after its packets went out, so the receiver can
        # be a frame ahead of the counters: read them once they caught up.
        assert await _settled(lambda: sender.counters()[2] >= len(packets)), \
            (sender.counters(), len(packets))
        # sent by the camera's frame thread, not pulled through the track on the loop
        assert sink.threads == {"video-camera"}
        assert track.sub is None and enc.subscriber_names == ["room"]
        assert await _settled(lambda: track.packets == sink.frames > 0), \
            (track.packets, sink.frames)
        seqs = [p.sequence_number for p in packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
        assert {p.payload_type for p in packets} == {96}
        assert {p.ssrc for p in packets} == {sender._ssrc}
        assert all(p.extensions.mid == "7" for p in packets)
        # the counters a sender report reads agree with what was sent
        ntp, _, count, octets = sender.counters()
        assert count >= len(packets) and octets > 0 and ntp > 0
        stats = await sender.getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert outbound.packetsSent >= count
    finally:
        await sender.stop()
    assert sink._closed and enc.subscriber_names == []
    await _datagrams(receiver, 0.2)  # what was on its way before the stop
    late = [d for d in await _datagrams(receiver, 0.5) if not is_rtcp(d)]
    assert late == [], f"{len(late)} RTP packets after the sender stopped"
    await enc.stop()


async def _rtp_from(receiver: Any, rx: Session, extensions: Any, n: int) -> list[RtpPacket]:
    got: list[RtpPacket] = []
    while len(got) < n:
        data = await asyncio.wait_for(receiver.datagrams.get(), T)
        if not is_rtcp(data):
            got.append(RtpPacket.parse(rx.unprotect(data), extensions))
    return got


async def test_camera_off_and_on_again_continues_the_stream(wire: Any) -> None:
    from services.room.tracks import SwitchableVideoTrack

    dtls, rx, receiver, _ = wire
    enc = SharedVideoEncoder(lambda: SimCamera(320, 240, 30), bitrate_kbps=300)
    await enc.start()
    switchable = SwitchableVideoTrack(lambda: EncodedVideoTrack(enc))
    switchable.set_codec("vp8")
    sender = send_frames(RTCRtpSender(switchable, dtls))
    await sender.send(parameters([VP8]))
    extensions = extension_map([VP8])
    try:
        before = await _rtp_from(receiver, rx, extensions, 20)
        switchable.switch(False)
        assert enc.subscriber_names == []  # the inner track is gone, and the sink with it
        before += [RtpPacket.parse(rx.unprotect(d), extensions)
                   for d in await _datagrams(receiver, 0.3) if not is_rtcp(d)]
        assert [d for d in await _datagrams(receiver, 0.4) if not is_rtcp(d)] == []
        switchable.switch(True)
        after = await _rtp_from(receiver, rx, extensions, 20)
    finally:
        await sender.stop()
        await enc.stop()
    # one stream: the sequence numbers run on, the timestamps move forward by the pause
    assert after[0].sequence_number == (before[-1].sequence_number + 1) & 0xFFFF
    gap = (after[0].timestamp - before[-1].timestamp) & 0xFFFFFFFF
    assert 0.5 * 90_000 < gap < 5 * 90_000
    assert sender.rtp_sink.threads and sender.rtp_sink.failed is None

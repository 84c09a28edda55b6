"""The room's RTP send path alone: CPU per video frame and per audio packet.

The same encoded media (a 640x480 VP8-sized frame of 4.5 kB, which aiortc's packetizer
cuts into 4 RTP packets, and a 80-byte Opus packet) is sent by aiortc's own
``RTCRtpSender`` (the reference) and by the room's :class:`FrameRtpSender`, each on a
real DTLS transport object in its connected state (an SRTP session keyed here), through a
real UDP socket on 127.0.0.1 to a socket that drops what it gets. A track hands out the
frames as fast as the sender takes them; the figure is the process CPU divided by the
frames sent. It is everything between ``track.recv()`` returning and the datagram leaving:
packetizing, header extensions, SRTP, the socket, the sender's bookkeeping.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import time
from typing import Any

from bench.report import Row

FRAMES = 3000
ROUNDS = 4
VIDEO_FRAME = bytes(range(256)) * 18  # 4.5 kB
OPUS_PACKET = b"\x78" + bytes(79)


def _wire(loop: asyncio.AbstractEventLoop) -> Any:
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
    from aiortc.rtcdtlstransport import State
    from pylibsrtp import Policy, Session

    class Sink(asyncio.DatagramProtocol):
        received = 0

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.received += 1

    class Pair:
        def __init__(self, transport: Any, remote: Any) -> None:
            self.protocol = self
            self.transport = transport
            self.remote_addr = remote

        async def send_data(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data, addr)

    async def make() -> tuple[Any, Sink, list[Any]]:
        sink = Sink()
        rx, _ = await loop.create_datagram_endpoint(lambda: sink, local_addr=("127.0.0.1", 0))
        tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=("127.0.0.1", 0))
        dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                                [RTCCertificate.generateCertificate()])
        dtls._tx_srtp = Session(Policy(key=os.urandom(30),
                                       ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        dtls._state = State.CONNECTED
        dtls.transport._connection._nominated[1] = Pair(tx, rx.get_extra_info("sockname"))
        return dtls, sink, [rx, tx]

    return make()


async def _send(kind: str, fast: bool) -> dict[str, Any]:
    from aiortc import RTCRtpCodecParameters, RTCRtpSender
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
    from aiortc.rtcrtpparameters import (
        RTCRtcpParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpSendParameters,
    )

    from services.room.opus_send import install_audio_sender_hooks
    from services.room.rtp_send import send_frames

    install_audio_sender_hooks()
    loop = asyncio.get_running_loop()
    dtls, sink, sockets = await _wire(loop)
    video = kind == "video"
    data = VIDEO_FRAME if video else OPUS_PACKET
    step = 3000 if video else 960
    time_base = fractions.Fraction(1, 90000 if video else 48000)
    done = loop.create_future()

    class Frames(MediaStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.kind = kind
            self.n = 0
            self.last_audio_level = None if video else 20

        async def recv(self) -> Any:
            import av

            if self.n == FRAMES:
                if not done.done():
                    done.set_result(None)
                await asyncio.sleep(1)
                raise MediaStreamError
            packet = av.Packet(data)
            packet.pts = self.n * step
            packet.time_base = time_base
            self.n += 1
            if self.n % 8 == 0:
                await asyncio.sleep(0)  # let the loop read the socket now and then
            return packet

    codec = (RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
             if video else RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000,
                                                 channels=2, payloadType=111))
    uris = ["urn:ietf:params:rtp-hdrext:sdes:mid",
            "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level"]
    params = RTCRtpSendParameters(
        codecs=[codec], muxId="0", rtcp=RTCRtcpParameters(cname="bench"),
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i + 1, uri=u)
                          for i, u in enumerate(uris)])
    sender = RTCRtpSender(Frames(), dtls)
    if fast:
        send_frames(sender)
    c0, t0 = time.process_time(), time.monotonic()
    await sender.send(params)
    await done
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    await sender.stop()
    for sock in sockets:
        sock.close()
    stats = await sender.getStats()
    sent = next(s for s in stats.values() if s.type == "outbound-rtp").packetsSent
    return {"cpu_us_per_frame": 1e6 * cpu / FRAMES, "wall_s": wall, "packets": sent,
            "received": sink.received}


def measure() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("video", "audio"):
        for fast in (False, True) * ROUNDS:  # interleaved, the best of each
            got = asyncio.run(_send(kind, fast))
            key = f"{kind}_{'ours' if fast else 'aiortc'}"
            if key not in out or got["cpu_us_per_frame"] < out[key]["cpu_us_per_frame"]:
                out[key] = got
    return out


def run() -> list[Row]:
    m = measure()
    rows = []
    for kind, what in (("video", "per video frame (4 RTP packets)"),
                       ("audio", "per audio packet")):
        ours, ref = m[f"{kind}_ours"], m[f"{kind}_aiortc"]
        rows.append(Row("rtp-send", f"CPU {what}", round(ours["cpu_us_per_frame"], 1), "us",
                        round(ref["cpu_us_per_frame"], 1), "aiortc's RTCRtpSender",
                        notes=f"{FRAMES} frames, {ours['packets']} packets "
                              f"(aiortc {ref['packets']}); best of {ROUNDS}",
                        extra=m if kind == "video" else {}))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)

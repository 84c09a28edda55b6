"""The room's video track: packets from the shared encoder, handed to aiortc as they are.

aiortc's ``RTCRtpSender`` packetizes (instead of encoding) whatever a track returns that
is an ``av.Packet`` rather than a frame: ``H264Encoder.pack()`` splits the Annex-B
bitstream into NAL units and takes the RTP timestamp from ``pts`` in ``time_base``.
So the room gets the same bytes as the recording and the RTMP push.

Two things aiortc would do to its own encoder must reach ours instead: keyframe requests
(RTCP PLI/FIR set a private flag that only matters when aiortc encodes) and the
receiver's bandwidth estimate (REMB sets ``target_bitrate`` on aiortc's encoder object).
:func:`install_sender_hooks` wraps ``RTCRtpSender._handle_rtcp_packet`` once so that,
for senders whose track is an :class:`EncodedVideoTrack`, both are forwarded to the
track's encoder; every other sender behaves exactly as before.
The negotiated codec must be H.264 (the room client prefers it for this track).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RtcpPsfbPacket as _Psfb
from aiortc.rtcrtpsender import RTCRtpSender, unpack_remb_fci

from services.media.encoder import SharedVideoEncoder
from services.media.packets import PacketSubscription

log = logging.getLogger(__name__)

RTCP_PSFB_PLI = 1
RTCP_PSFB_FIR = 4
RTCP_PSFB_APP = 15
#: Packets the room may fall behind by before it skips to the next keyframe.
ROOM_QUEUE_PACKETS = 15

_installed = False


class EncodedVideoTrack(MediaStreamTrack):
    """A video track whose ``recv()`` returns pre-encoded H.264 ``av.Packet``s.

    ``on_stop`` is called once when the track ends (the room unpublished or switched the
    camera off), so the owner can close the camera when nothing else uses it.
    """

    kind = "video"

    def __init__(self, encoder: SharedVideoEncoder,
                 on_stop: Callable[[EncodedVideoTrack], Awaitable[None] | None] | None = None,
                 name: str = "room") -> None:
        super().__init__()
        install_sender_hooks()
        self.encoder = encoder
        self._on_stop = on_stop
        self.sub: PacketSubscription = encoder.subscribe(name, ROOM_QUEUE_PACKETS)
        self.packets = 0
        self.keyframe_requests = 0
        self.remb_bps: int | None = None

    def __repr__(self) -> str:
        return f"<EncodedVideoTrack {self.readyState} packets={self.packets} {self.sub!r}>"

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            encoded = await self.sub.get()
        except EOFError:
            self.stop()
            raise MediaStreamError from None
        packet = av.Packet(encoded.data)
        packet.pts = encoded.pts
        packet.dts = encoded.pts
        packet.time_base = encoded.time_base
        if encoded.keyframe:
            packet.is_keyframe = True
        self.packets += 1
        return packet

    def request_keyframe(self, reason: str) -> None:
        self.keyframe_requests += 1
        self.encoder.request_keyframe(reason)

    def set_bandwidth_estimate(self, bps: int) -> None:
        """The room's receiver estimate: the encoder follows it (up to its configured cap)."""
        self.remb_bps = bps
        self.encoder.set_bitrate(bps // 1000)

    def stop(self) -> None:
        if self.readyState == "ended":
            return
        super().stop()
        self.sub.close()
        self.encoder.detach(self.sub)
        if self._on_stop is not None:
            result = self._on_stop(self)
            if result is not None:
                # the owner's coroutine: run it without blocking aiortc's stop()
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # stopped outside the loop (interpreter exit)
                    if asyncio.iscoroutine(result):
                        result.close()
                    return
                task = loop.create_task(_awaited(result), name="media:room-track-stopped")
                _background.add(task)
                task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


async def _awaited(result: Awaitable[None]) -> None:
    await result


def encoded_track_of(track: Any) -> EncodedVideoTrack | None:
    """The :class:`EncodedVideoTrack` a sender sends, also through a wrapper track that
    keeps its current inner track in ``inner`` or ``_inner`` (an on/off switch)."""
    for _ in range(3):
        if isinstance(track, EncodedVideoTrack):
            return track
        track = getattr(track, "inner", None) or getattr(track, "_inner", None)
        if track is None:
            return None
    return None


def install_sender_hooks() -> None:
    """Forward PLI/FIR and REMB to :class:`EncodedVideoTrack` senders (idempotent)."""
    global _installed
    if _installed:
        return
    original = RTCRtpSender._handle_rtcp_packet

    async def _handle_rtcp_packet(self: RTCRtpSender, packet: Any) -> None:
        await original(self, packet)
        if not isinstance(packet, _Psfb):
            return
        track = encoded_track_of(self.track)
        if track is None:
            return
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            track.request_keyframe("PLI" if packet.fmt == RTCP_PSFB_PLI else "FIR")
        elif packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self._ssrc in ssrcs:
                track.set_bandwidth_estimate(bitrate)

    RTCRtpSender._handle_rtcp_packet = _handle_rtcp_packet  # type: ignore[method-assign]
    _installed = True
    log.debug("aiortc sender hooks installed")

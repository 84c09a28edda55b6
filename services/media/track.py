"""The room's video track: packets from the shared encoder, handed to aiortc as they are.

aiortc's ``RTCRtpSender`` packetizes (instead of encoding) whatever a track returns that
is an ``av.Packet`` rather than a frame, with the packetizer of the codec the connection
negotiated: ``H264Encoder.pack()`` splits an Annex-B access unit into NAL units (FU-A /
STAP-A), ``Vp8Encoder.pack()`` puts one VP8 frame behind VP8 payload descriptors (with
its own picture id); both take the RTP timestamp from ``pts`` in ``time_base``. So the
room gets the same bytes as the recording and the RTMP push when it uses H.264.

The room's sender usually does not call :meth:`EncodedVideoTrack.recv`: it hands the
track an RTP sink (:meth:`EncodedVideoTrack.set_rtp_sink`, from
:mod:`services.room.video_send`) and the encode of the track's codec calls it with each
frame's packets in its own thread; ``recv`` is the path of senders that do not (the
page's preview, a sender that is not a ``FrameRtpSender``).

The track learns its codec from whoever negotiated it (:meth:`EncodedVideoTrack.set_codec`,
from the SDP answer) and only then subscribes to that codec's encode; it never returns a
packet of another codec, as aiortc would send it under the negotiated payload type.

Two things aiortc would do to its own encoder must reach ours instead: keyframe requests
(RTCP PLI/FIR set a private flag that only matters when aiortc encodes) and the
receiver's bandwidth estimate (REMB sets ``target_bitrate`` on aiortc's encoder object).
:func:`install_sender_hooks` wraps ``RTCRtpSender._handle_rtcp_packet`` once so that,
for senders whose track is an :class:`EncodedVideoTrack`, both are forwarded to the
track's encoder; every other sender behaves exactly as before.
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
    """A video track whose ``recv()`` returns pre-encoded ``av.Packet``s of one codec.

    ``codec`` (``"h264"`` or ``"vp8"``) is the codec the connection negotiated; when it is
    not known yet, :meth:`recv` waits until :meth:`set_codec` tells it. ``on_stop`` is
    called once when the track ends (the room unpublished or switched the camera off), so
    the owner can close the camera when nothing else uses it.
    """

    kind = "video"
    #: the sender may send this track's packets from the encode thread (set_rtp_sink)
    takes_rtp_sink = True

    def __init__(self, encoder: SharedVideoEncoder,
                 on_stop: Callable[[EncodedVideoTrack], Awaitable[None] | None] | None = None,
                 name: str = "room", codec: str | None = None) -> None:
        super().__init__()
        install_sender_hooks()
        self.encoder = encoder
        self.name = name
        self._on_stop = on_stop
        self.codec: str | None = None
        self.sub: PacketSubscription | None = None
        self._codec_known = asyncio.Event()
        self._pulled = 0  # packets returned by recv()
        self._sent_by_sinks = 0  # frames sent from the encode thread, sinks detached
        self._sink_base = 0
        self.refused = 0  # packets of another codec, never sent
        self.keyframe_requests = 0
        self.remb_bps: int | None = None
        #: the sender's RTP send in the encode thread (:meth:`set_rtp_sink`), if any
        self.rtp_sink: Any = None
        if codec is not None:
            self.set_codec(codec)

    def __repr__(self) -> str:
        return (f"<EncodedVideoTrack {self.readyState} {self.codec or '-'} "
                f"packets={self.packets} {self.sub!r}>")

    def set_codec(self, codec: str) -> None:
        """Send ``codec`` from now on (what the SDP answer chose); raises ValueError for a
        codec the shared encoder cannot produce."""
        codec = codec.lower()
        if codec == self.codec or self.readyState != "live":
            return
        self.encoder.encode_of(codec)  # ValueError for a codec we cannot produce
        old = self.sub
        self._remove_sink()
        self.codec = codec
        if self.rtp_sink is not None:
            self.sub = None
            self._add_sink()
        else:
            self.sub = self.encoder.subscribe(self.name, ROOM_QUEUE_PACKETS, codec=codec)
        if old is not None:
            old.close()
            self.encoder.detach(old)
        self._codec_known.set()
        log.info("%s video track: sending %s", self.name, codec)

    async def recv(self) -> av.Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self.sub is None:
                await self._codec_known.wait()
                continue
            sub = self.sub
            try:
                encoded = await sub.get()
            except EOFError:
                if sub is not self.sub:
                    continue  # the codec changed while waiting
                self.stop()
                raise MediaStreamError from None
            if encoded.codec != self.codec:
                self.refused += 1
                continue
            return self._packet(encoded)

    def _packet(self, encoded: Any) -> av.Packet:
        packet = av.Packet(encoded.data)
        packet.pts = encoded.pts
        packet.dts = encoded.pts
        packet.time_base = encoded.time_base
        if encoded.keyframe:
            packet.is_keyframe = True
        self._pulled += 1
        return packet

    @property
    def packets(self) -> int:
        """Packets the room took: through :meth:`recv` and from the encode thread."""
        sink = self.rtp_sink
        attached = (getattr(sink, "frames", 0) - self._sink_base) if sink is not None else 0
        return self._pulled + self._sent_by_sinks + attached

    # -- sending from the encode thread ------------------------------------------------

    def set_rtp_sink(self, sink: Any) -> None:
        """Hand the packets to ``sink`` in the encode thread instead of :meth:`recv`
        (``sink(packets)``, see :mod:`services.room.video_send`); from the next keyframe."""
        if self.readyState != "live" or sink is self.rtp_sink:
            return
        self._remove_sink()
        self.rtp_sink = sink
        sub, self.sub = self.sub, None
        if sub is not None:
            sub.close()
            self.encoder.detach(sub)
        self._add_sink()

    def clear_rtp_sink(self, sink: Any) -> None:
        """Stop handing packets to ``sink``; :meth:`recv` gets them again."""
        if sink is not self.rtp_sink:
            return
        self._remove_sink()
        self.rtp_sink = None
        if self.readyState == "live" and self.codec is not None:
            self.sub = self.encoder.subscribe(self.name, ROOM_QUEUE_PACKETS, codec=self.codec)

    def _add_sink(self) -> None:
        if self.codec is None or self.rtp_sink is None:
            return
        enc = self.encoder.encode_of(self.codec)
        restart = getattr(self.rtp_sink, "restart", None)
        if restart is not None:
            restart()
        self._sink_base = getattr(self.rtp_sink, "frames", 0)
        enc.fanout.add_sink(self.name, self.rtp_sink)
        enc.request_keyframe(f"{self.name} sends from the encoder")

    def _remove_sink(self) -> None:
        sink = self.rtp_sink
        if self.codec is not None and sink is not None:
            if self.encoder.encode_of(self.codec).fanout.remove_sink(sink):
                self._sent_by_sinks += getattr(sink, "frames", 0) - self._sink_base
                self._sink_base = getattr(sink, "frames", 0)

    def request_keyframe(self, reason: str) -> None:
        self.keyframe_requests += 1
        if self.codec is not None:
            self.encoder.request_keyframe(reason, codec=self.codec)

    def set_bandwidth_estimate(self, bps: int) -> None:
        """The room's receiver estimate: this codec's encode follows it (up to its cap)."""
        self.remb_bps = bps
        if self.codec is not None:
            self.encoder.set_bitrate(bps // 1000, codec=self.codec)

    def stop(self) -> None:
        if self.readyState == "ended":
            return
        super().stop()
        self._codec_known.set()  # wake a recv() still waiting for its codec
        self._remove_sink()
        if self.sub is not None:
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
    shows its current inner track as ``inner`` (an on/off switch such as
    :class:`services.room.tracks.SwitchableVideoTrack`)."""
    for _ in range(3):
        if isinstance(track, EncodedVideoTrack):
            return track
        track = getattr(track, "inner", None)
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

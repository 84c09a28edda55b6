"""The camera's RTP send, off the event loop: no hop to the loop per frame.

When the room's video track takes its packets from the shared encoder
(:class:`~services.media.track.EncodedVideoTrack`), the sender does not pull them on the
loop. It hands the track a :class:`VideoRtpSink` instead, which is called with each
frame's packets right after they are encoded, in the camera's frame thread
(:mod:`services.media.pump`) or, for a camera read on the loop, in the encode's worker
thread: the sink
packetizes the frame (aiortc's packetizer of that codec), builds the RTP headers,
protects each packet through the transport's locked SRTP session
(:mod:`services.room.srtp_lock`) and sends it on a duplicate of the nominated ICE pair's
socket. The event loop only sets the sink up, watches the connection twice a second and
takes the sink down.

What the loop still does for this stream: RTCP (sender reports, read from counters the
sink updates under the sender's counter lock), NACKed packets from the history the sink
fills, PLI/FIR and REMB, which reach the encoder as before (``services.media.track``).

The sink's own lock is held for a whole frame; :meth:`VideoRtpSink.close` takes it, so
once it returns nothing more is sent. A send the kernel refuses (a full socket buffer,
an unreachable network) drops that packet and is counted; it never ends the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from services.room.pair_socket import nominated_pair as nominated_pair  # re-exported
from services.room.rtp_wire import DTLS_CONNECTED, RtpWire
from services.room.srtp_lock import LockedSrtpSession

if TYPE_CHECKING:
    from services.media.packets import EncodedPacket

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000


class VideoRtpSink:
    """Sends each encoded frame of one sender's stream, in the thread that encoded it.

    ``sender`` is the :class:`~services.room.rtp_send.FrameRtpSender` whose stream this
    is (its SSRC, header extensions, history and counters); ``packetizer`` is aiortc's
    encoder object of the negotiated codec (only its ``pack`` is used); ``session`` the
    transport's locked outbound SRTP session.
    """

    def __init__(self, sender: Any, dtls: Any, session: LockedSrtpSession, codec: str,
                 payload_type: int, packetizer: Any, sequence_number: int,
                 timestamp_origin: int) -> None:
        self.sender = sender
        self.codec = codec
        self._wire = RtpWire("video", sender, dtls, session, payload_type, sequence_number)
        self._packetizer = packetizer
        self._timestamp_origin = timestamp_origin
        self._lock = threading.Lock()
        self._closed = False
        self._waiting_keyframe = True
        # restamping: output time continues across a switch of the track (camera off/on)
        self._offset: int | None = None
        self._last_out = -1
        self._last_wall = 0.0
        #: why the sink stopped on its own (the loop then ends the sender's RTP run)
        self.failed: str | None = None
        self.frames = 0
        self.threads: set[str] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.failed or "open"
        return (f"<VideoRtpSink {self.codec} {state} frames={self.frames} "
                f"packets={self.packets} dropped={self.dropped}>")

    @property
    def next_sequence_number(self) -> int:
        return self._wire.sequence_number

    @property
    def packets(self) -> int:
        return self._wire.packets

    @property
    def dropped(self) -> int:
        return self._wire.dropped

    @property
    def send_errors(self) -> int:
        return self._wire.send_errors

    def restart(self) -> None:
        """A new inner track (the camera came back on): wait for its keyframe, and keep
        the output timestamps running from where they were."""
        with self._lock:
            self._waiting_keyframe = True
            self._offset = None

    def close(self) -> None:
        """Send nothing more (returns once a frame being sent is done). Idempotent."""
        with self._lock:
            self._closed = True
            self._wire.close()

    # -- the camera's frame or encode thread ------------------------------------------

    def __call__(self, packets: list[EncodedPacket]) -> None:
        """Send the packets of one encoded frame (the encode thread)."""
        with self._lock:
            if self._closed or self.failed is not None:
                return
            for encoded in packets:
                if encoded.codec != self.codec:
                    continue
                if self._waiting_keyframe:
                    if not encoded.keyframe:
                        continue
                    self._waiting_keyframe = False
                try:
                    self._send_frame(encoded)
                except Exception as exc:  # never let a send end the camera's threads
                    self.failed = f"{type(exc).__name__}: {exc}"
                    log.warning("video RTP send stopped: %s", self.failed)
                    return
            self.threads.add(threading.current_thread().name)

    def _restamp(self, pts: int) -> int:
        now = time.monotonic()
        if self._offset is None:
            gap = int((now - self._last_wall) * VIDEO_CLOCK) if self._last_out >= 0 else 0
            self._offset = (self._last_out + max(gap, 1)) - pts
        out = pts + self._offset
        if out <= self._last_out:
            out = self._last_out + 1
        self._last_out = out
        self._last_wall = now
        return out

    def _send_frame(self, encoded: EncodedPacket) -> None:
        import av

        wire = self._wire
        if not wire.can_send():
            self.failed = wire.failed
            return
        packet = av.Packet(encoded.data)
        packet.pts = self._restamp(encoded.pts)
        packet.time_base = encoded.time_base
        payloads, timestamp = self._packetizer.pack(packet)
        if not payloads:
            return
        wire.send(payloads, (self._timestamp_origin + timestamp) & 0xFFFFFFFF)
        self.failed = wire.failed
        self.frames += 1


#: How often the loop checks a sink's connection and track (s).
WATCH_S = 0.5


def takes_rtp_sink(track: Any) -> bool:
    """Whether ``track``'s packets can be sent from the camera's threads."""
    return bool(track is not None and getattr(track, "takes_rtp_sink", False))


async def send_from_encoder(sender: Any, codec: Any, sequence_number: int,
                            timestamp_origin: int) -> int:
    """Run ``sender``'s video stream from the camera's threads until the connection
    leaves CONNECTED (raises ConnectionError), the sink fails, or the sender's track
    changes to one that cannot take a sink; returns the next sequence number for the
    loop's own send path. Cancelled (the sender stops): nothing is sent once it returns."""
    import asyncio

    from aiortc.codecs import get_encoder

    from services.room.srtp_lock import locked_tx_session

    dtls = sender.transport
    session = locked_tx_session(dtls)
    if session is None or dtls._state is not DTLS_CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    packetizer = get_encoder(codec)
    sender._RTCRtpSender__encoder = packetizer  # aiortc's REMB handler sets its bitrate
    sink = VideoRtpSink(sender, dtls, session, codec.mimeType.split("/")[1].lower(),
                        codec.payloadType, packetizer, sequence_number, timestamp_origin)
    sender.rtp_sink = sink
    track = sender.track
    track.set_rtp_sink(sink)
    log.info("video RTP (%s) sent from the camera's threads", sink.codec)
    try:
        while True:
            await asyncio.sleep(WATCH_S)
            if dtls._state is not DTLS_CONNECTED:
                raise ConnectionError("Cannot send encrypted RTP, not connected")
            if sink.failed is not None:
                raise ConnectionError(f"video RTP send failed: {sink.failed}")
            if sender.track is not track:  # replaceTrack()
                track.clear_rtp_sink(sink)
                track = sender.track
                if not takes_rtp_sink(track):
                    break
                track.set_rtp_sink(sink)
    finally:
        if track is not None and hasattr(track, "clear_rtp_sink"):
            track.clear_rtp_sink(sink)
        sink.close()
        log.info("video RTP (%s) from the camera's threads stopped: %r", sink.codec, sink)
    return sink.next_sequence_number

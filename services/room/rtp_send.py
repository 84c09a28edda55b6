"""The RTP send path of the room's senders: per frame, not per packet.

aiortc's ``RTCRtpSender`` builds every RTP packet as an object, serializes its header
extensions one by one, reads the NTP clock twice, and goes through four coroutines
(DTLS transport, ICE transport, ICE connection, STUN protocol) to one ``sendto``. A
640x480@30 stream is 4-8 packets a frame, so most of that work is the same for every
packet of a frame. :class:`FrameRtpSender` does it once a frame instead:

- the packets of a frame share one timestamp, one abs-send-time, one audio level and the
  MID, so the header extension block is built once (by aiortc's own
  ``HeaderExtensionsMap``) and each packet only packs its fixed 12-byte header;
- SRTP protection is called directly on the DTLS transport's outbound session, and the
  protected packet goes straight to the datagram socket of the nominated ICE pair;
- the counters RTCP sender reports and ``getStats`` read are updated once a frame.

A video track fed by the shared encoder is not pulled on the loop at all: its packets
are sent from the camera's threads (:mod:`services.room.video_send`). Every sender then
protects through the transport's locked SRTP session (:mod:`services.room.srtp_lock`),
and the counters RTCP sender reports read are updated and read under
:attr:`FrameRtpSender.counters_lock`.

Everything else is aiortc's: what a track returns is packed by the negotiated codec's
packetizer (``_next_encoded_frame``), RTCP is aiortc's, and NACKed packets are sent
again (as RTX when negotiated) from a history of the last packets' plain bytes.

:func:`send_frames` turns a transceiver's sender into one; it must be called before the
connection starts the sender (right after ``addTransceiver``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable
from struct import Struct
from typing import Any

from aiortc import clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtp import (
    RTP_HISTORY_SIZE,
    HeaderExtensions,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    wrap_rtx,
)
from aiortc.utils import random32, uint16_add

from services.room.srtp_lock import LockedSrtpSession, locked_tx_session
from services.room.video_send import nominated_pair, send_from_encoder, takes_rtp_sink

log = logging.getLogger(__name__)

#: version 2, no padding, extension bit set / not set, no CSRC
_FIRST_BYTE_EXT = 0x90
_FIRST_BYTE = 0x80
_HEADER = Struct("!BBHLL")
_EXT_HEADER = Struct("!HH")
_DTLS_CONNECTED = DtlsState.CONNECTED

def _private(sender: RTCRtpSender, name: str) -> Any:
    return getattr(sender, f"_RTCRtpSender__{name}")


def _set_private(sender: RTCRtpSender, name: str, value: Any) -> None:
    setattr(sender, f"_RTCRtpSender__{name}", value)


# aiortc's name-mangled counters, updated once a frame
_OCTETS = "_RTCRtpSender__octet_count"
_PACKETS = "_RTCRtpSender__packet_count"
_NTP = "_RTCRtpSender__ntp_timestamp"
_RTP_TS = "_RTCRtpSender__rtp_timestamp"
_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_TX_PACKETS = "_RTCDtlsTransport__tx_packets"


class FrameRtpSender(RTCRtpSender):
    """An ``RTCRtpSender`` that sends each frame's packets in one go (see the module)."""

    _sent: list[bytes | None]
    frames_sent: int
    direct_packets: int
    #: held while the counters of RTCP sender reports and ``getStats`` change or are read
    counters_lock: threading.Lock
    #: the sink that sends this stream from the camera's threads (video), if any
    rtp_sink: Any = None

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        _private(self, "rtp_started").set()
        self._sent = [None] * RTP_HISTORY_SIZE
        self.frames_sent = 0
        self.direct_packets = 0
        self.counters_lock = threading.Lock()
        self._pair: Any = None
        self._socket_send: Callable[[bytes, Any], None] | None = None
        self._dtls_counters = hasattr(self.transport, _TX_BYTES)
        sequence_number = random_sequence_number()
        timestamp_origin = random32()
        extensions_map = _private(self, "rtp_header_extensions_map")
        mid = _private(self, "mid")
        payload_type = codec.payloadType
        assert payload_type is not None, "a sender is started with a negotiated codec"
        try:
            if self.kind == "video" and takes_rtp_sink(self.track):
                sequence_number = await send_from_encoder(self, codec, sequence_number,
                                                          timestamp_origin)
            while True:
                if not self.track:
                    await asyncio.sleep(0.02)
                    continue
                enc_frame = await self._next_encoded_frame(codec)
                if enc_frame is None:
                    continue
                timestamp = (timestamp_origin + enc_frame.timestamp) & 0xFFFFFFFF
                ntp = clock.current_ntp_time()
                values = HeaderExtensions(mid=mid, abs_send_time=(ntp >> 14) & 0x00FFFFFF)
                if enc_frame.audio_level is not None:
                    values.audio_level = (False, -enc_frame.audio_level)
                profile, ext = extensions_map.set(values)
                if ext:
                    first = _FIRST_BYTE_EXT
                    ext = _EXT_HEADER.pack(profile, len(ext) >> 2) + ext
                else:
                    first = _FIRST_BYTE
                dtls = self.transport
                sent_to = self._send_direct(dtls, enc_frame.payloads, first, payload_type,
                                            sequence_number, timestamp, ext)
                if sent_to is None:
                    sent_to = await self._send_through_aiortc(
                        dtls, enc_frame.payloads, first, payload_type, sequence_number,
                        timestamp, ext)
                sequence_number = sent_to
                self._count_time(ntp, timestamp)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            # the RTP task must end normally, or the sender's stop() waits forever
            log.warning("RTP sender (%s) failed:\n%s", self.kind, traceback.format_exc())
        track = self.track
        if track:
            track.stop()
            _set_private(self, "track", None)
        _set_private(self, "encoder", None)
        _private(self, "rtp_exited").set()

    def _send_direct(self, dtls: Any, payloads: list[bytes], first: int, payload_type: int,
                     sequence_number: int, timestamp: int, ext: bytes) -> int | None:
        """Protect the packets of one frame and hand them to the socket of the nominated
        ICE pair; returns the next sequence number, or None (nothing sent) when that
        socket cannot be reached directly."""
        if dtls._state is not _DTLS_CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = nominated_pair(dtls)
        if pair is not self._pair:  # first frame, or ICE nominated another pair
            socket = getattr(getattr(pair, "protocol", None), "transport", None)
            self._pair = pair
            self._socket_send = None if socket is None else socket.sendto
        send = self._socket_send
        if send is None:
            return None
        addr = pair.remote_addr
        session = dtls._tx_srtp
        if not isinstance(session, LockedSrtpSession):
            session = locked_tx_session(dtls)
        protect = session.protect
        ssrc = self._ssrc
        sent = self._sent
        pack = _HEADER.pack
        last = len(payloads) - 1
        octets = wire_bytes = 0
        for i, payload in enumerate(payloads):
            second = payload_type | 0x80 if i == last else payload_type
            data = pack(first, second, sequence_number, timestamp, ssrc) + ext + payload
            sent[sequence_number % RTP_HISTORY_SIZE] = data
            protected = protect(data)
            send(protected, addr)
            octets += len(payload)
            wire_bytes += len(protected)
            sequence_number = (sequence_number + 1) & 0xFFFF
        self._count(dtls, len(payloads), octets, len(payloads), wire_bytes)
        self.direct_packets += len(payloads)
        return sequence_number

    async def _send_through_aiortc(self, dtls: Any, payloads: list[bytes], first: int,
                                   payload_type: int, sequence_number: int, timestamp: int,
                                   ext: bytes) -> int:
        """The same through the DTLS transport's own path (no direct socket)."""
        last = len(payloads) - 1
        octets = 0
        for i, payload in enumerate(payloads):
            second = payload_type | 0x80 if i == last else payload_type
            data = _HEADER.pack(first, second, sequence_number, timestamp, self._ssrc) + ext \
                + payload
            self._sent[sequence_number % RTP_HISTORY_SIZE] = data
            await dtls._send_rtp(data)  # counts the DTLS transport's bytes itself
            octets += len(payload)
            sequence_number = (sequence_number + 1) & 0xFFFF
        self._count(None, len(payloads), octets, 0, 0)
        return sequence_number

    def _count(self, dtls: Any, packets: int, octets: int, wire_packets: int,
               wire_bytes: int) -> None:
        """aiortc's counters (RTCP sender reports, ``getStats``), once a frame (any
        thread: under :attr:`counters_lock`)."""
        with self.counters_lock:
            state = vars(self)
            state[_OCTETS] += octets
            state[_PACKETS] += packets
            if dtls is not None and self._dtls_counters:
                # aiortc adds to these on the loop without a lock; a plain dict update
                # is not interleaved with another thread's in CPython
                transport = vars(dtls)
                transport[_TX_BYTES] += wire_bytes
                transport[_TX_PACKETS] += wire_packets

    def _count_time(self, ntp: int, rtp_timestamp: int) -> None:
        """The NTP and RTP time of the frame just sent (the pair a sender report maps)."""
        with self.counters_lock:
            state = vars(self)
            state[_NTP] = ntp
            state[_RTP_TS] = rtp_timestamp
            self.frames_sent += 1

    def count_frame(self, dtls: Any, packets: int, octets: int, wire_packets: int,
                    wire_bytes: int, ntp: int, rtp_timestamp: int) -> None:
        """Everything one frame sent from the camera's threads adds, in one hold."""
        with self.counters_lock:
            state = vars(self)
            state[_OCTETS] += octets
            state[_PACKETS] += packets
            state[_NTP] = ntp
            state[_RTP_TS] = rtp_timestamp
            self.frames_sent += 1
            if self._dtls_counters:
                transport = vars(dtls)
                transport[_TX_BYTES] += wire_bytes
                transport[_TX_PACKETS] += wire_packets

    def counters(self) -> tuple[int, int, int, int]:
        """(NTP time, RTP timestamp, packets, octets) of the last frame, consistent."""
        with self.counters_lock:
            state = vars(self)
            return state[_NTP], state[_RTP_TS], state[_PACKETS], state[_OCTETS]

    async def _send_rtcp(self, packets: list[Any]) -> None:
        """aiortc's reports, with the sender info of its sender report taken in one
        consistent read of the counters (another thread may be adding a frame)."""
        if getattr(self, "counters_lock", None) is not None:
            for i, packet in enumerate(packets):
                if isinstance(packet, RtcpSrPacket) and packet.ssrc == self._ssrc:
                    ntp, rtp_ts, count, octets = self.counters()
                    packets[i] = RtcpSrPacket(ssrc=packet.ssrc, reports=packet.reports,
                                              sender_info=RtcpSenderInfo(
                                                  ntp_timestamp=ntp, rtp_timestamp=rtp_ts,
                                                  packet_count=count & 0xFFFFFFFF,
                                                  octet_count=octets & 0xFFFFFFFF))
                    _set_private(self, "lsr", (ntp >> 16) & 0xFFFFFFFF)
        await super()._send_rtcp(packets)

    async def getStats(self) -> Any:
        report = await super().getStats()
        if getattr(self, "counters_lock", None) is not None:
            stats = report.get(f"outbound-rtp_{id(self)}")
            if stats is not None:
                _, _, stats.packetsSent, stats.bytesSent = self.counters()
        return report

    async def _retransmit(self, sequence_number: int) -> None:
        """Send a NACKed packet again (as RTX when negotiated), from the history."""
        sent = getattr(self, "_sent", None)
        data = sent[sequence_number % RTP_HISTORY_SIZE] if sent else None
        if data is None:
            return
        extensions_map = _private(self, "rtp_header_extensions_map")
        packet = RtpPacket.parse(data, extensions_map)
        if packet.sequence_number != sequence_number:
            return  # overwritten by a newer packet
        rtx_payload_type = _private(self, "rtx_payload_type")
        if rtx_payload_type is not None:
            rtx_sequence_number = _private(self, "rtx_sequence_number")
            packet = wrap_rtx(packet, payload_type=rtx_payload_type,
                              sequence_number=rtx_sequence_number, ssrc=self._rtx_ssrc)
            _set_private(self, "rtx_sequence_number", uint16_add(rtx_sequence_number, 1))
            data = packet.serialize(extensions_map)
        await self.transport._send_rtp(data)


def send_frames(sender: RTCRtpSender) -> RTCRtpSender:
    """Make ``sender`` (not started yet) send frame by frame (:class:`FrameRtpSender`)."""
    if type(sender) is RTCRtpSender:
        sender.__class__ = FrameRtpSender
    return sender

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

Everything else is aiortc's: what a track returns is packed by the negotiated codec's
packetizer (``_next_encoded_frame``), RTCP is aiortc's, and NACKed packets are sent
again (as RTX when negotiated) from a history of the last packets' plain bytes.

:func:`send_frames` turns a transceiver's sender into one; it must be called before the
connection starts the sender (right after ``addTransceiver``).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from struct import Struct
from typing import Any

from aiortc import clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket, wrap_rtx
from aiortc.utils import random32, uint16_add

log = logging.getLogger(__name__)

#: version 2, no padding, extension bit set / not set, no CSRC
_FIRST_BYTE_EXT = 0x90
_FIRST_BYTE = 0x80
_HEADER = Struct("!BBHLL")
_EXT_HEADER = Struct("!HH")
_DTLS_CONNECTED = DtlsState.CONNECTED

Sendto = Callable[[bytes], None]


def _private(sender: RTCRtpSender, name: str) -> Any:
    return getattr(sender, f"_RTCRtpSender__{name}")


def _set_private(sender: RTCRtpSender, name: str, value: Any) -> None:
    setattr(sender, f"_RTCRtpSender__{name}", value)


def _wire(dtls: Any) -> Sendto | None:
    """``sendto`` of the datagram socket under ``dtls`` (its nominated ICE pair), or None
    when it cannot be reached directly."""
    connection = getattr(dtls.transport, "_connection", None)
    nominated = getattr(connection, "_nominated", None)
    if not nominated:
        return None
    pair = nominated.get(1)
    socket = getattr(getattr(pair, "protocol", None), "transport", None)
    if socket is None:
        return None
    addr = pair.remote_addr
    send = socket.sendto

    def sendto(data: bytes) -> None:
        send(data, addr)

    return sendto


class FrameRtpSender(RTCRtpSender):
    """An ``RTCRtpSender`` that sends each frame's packets in one go (see the module)."""

    _sent: list[bytes | None]
    frames_sent: int
    direct_packets: int

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        _private(self, "rtp_started").set()
        self._sent = [None] * RTP_HISTORY_SIZE
        self.frames_sent = 0
        self.direct_packets = 0
        sequence_number = random_sequence_number()
        timestamp_origin = random32()
        extensions_map = _private(self, "rtp_header_extensions_map")
        mid = _private(self, "mid")
        payload_type = codec.payloadType
        assert payload_type is not None, "a sender is started with a negotiated codec"
        try:
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
                sequence_number = await self._send_frame(
                    enc_frame.payloads, first, payload_type, sequence_number, timestamp, ext)
                _set_private(self, "ntp_timestamp", ntp)
                _set_private(self, "rtp_timestamp", timestamp)
                self.frames_sent += 1
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

    async def _send_frame(self, payloads: list[bytes], first: int, payload_type: int,
                          sequence_number: int, timestamp: int, ext: bytes) -> int:
        """Protect and send the packets of one frame; returns the next sequence number."""
        dtls: Any = self.transport
        if dtls._state is not _DTLS_CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        protect = dtls._tx_srtp.protect
        sendto = _wire(dtls)
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
            if sendto is not None:
                sendto(protected)
            else:
                await dtls.transport._send(protected)
            octets += len(payload)
            wire_bytes += len(protected)
            sequence_number = (sequence_number + 1) & 0xFFFF
        count = len(payloads)
        if sendto is not None:
            self.direct_packets += count
        _set_private(self, "octet_count", _private(self, "octet_count") + octets)
        _set_private(self, "packet_count", _private(self, "packet_count") + count)
        tx_bytes = "_RTCDtlsTransport__tx_bytes"
        tx_packets = "_RTCDtlsTransport__tx_packets"
        if hasattr(dtls, tx_bytes):
            setattr(dtls, tx_bytes, getattr(dtls, tx_bytes) + wire_bytes)
            setattr(dtls, tx_packets, getattr(dtls, tx_packets) + count)
        return sequence_number

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

"""One RTP stream put on the wire from a media thread, without the event loop.

The camera's sink (:mod:`services.room.video_send`) packetizes each encoded frame and
hands the payloads here: :class:`RtpWire` writes each packet's 12-byte header and the
stream's header extensions (MID, abs-send-time), keeps the packet for NACKs in
the sender's history, protects it through the connection's locked SRTP session and
sends it on a duplicate of the nominated ICE pair's socket. The sender's counters (RTCP
sender reports, ``getStats``) are updated once per call. A send the kernel refuses drops
that packet and is counted (logged once when it is not a full buffer); it never raises.
"""

from __future__ import annotations

import errno
import logging
from struct import Struct
from typing import Any

from aiortc import clock
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions

from services.room.pair_socket import PairSocket
from services.room.srtp_lock import LockedSrtpSession

log = logging.getLogger(__name__)

_HEADER = Struct("!BBHLL")
_EXT_HEADER = Struct("!HH")
DTLS_CONNECTED = DtlsState.CONNECTED
_DROPPABLE = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)


class RtpWire:
    """Packets of one sender's stream, protected and sent (not thread-safe: the sink
    that owns it sends under its own lock)."""

    def __init__(self, kind: str, sender: Any, dtls: Any, session: LockedSrtpSession,
                 payload_type: int, sequence_number: int) -> None:
        self.kind = kind
        self.sender = sender
        self.dtls = dtls
        self._session = session
        self._payload_type = payload_type
        self.sequence_number = sequence_number
        self._extensions_map = sender._RTCRtpSender__rtp_header_extensions_map
        self._mid = sender._RTCRtpSender__mid
        self.socket = PairSocket(dtls)
        #: why sending stopped on its own (the DTLS state); the sink then fails
        self.failed: str | None = None
        self.packets = 0
        self.dropped = 0
        self.send_errors = 0

    def close(self) -> None:
        self.socket.close()

    def can_send(self) -> bool:
        """Whether a frame can go out now: False while the ICE pair has no socket (the
        frame is counted as dropped) or once DTLS is no longer connected (``failed``)."""
        dtls = self.dtls
        if dtls._state is not DTLS_CONNECTED:
            self.failed = f"DTLS {dtls._state.name.lower()}"
            return False
        if self.socket.target()[0] is None:
            self.dropped += 1
            return False
        return True

    def send(self, payloads: list[bytes], timestamp: int) -> int:
        """Send one frame's ``payloads`` (RTP ``timestamp``; the marker bit on the last
        one); returns how many left. Nothing is sent, and ``failed`` says why, once the
        connection's DTLS is no longer connected."""
        dtls = self.dtls
        if dtls._state is not DTLS_CONNECTED:
            self.failed = f"DTLS {dtls._state.name.lower()}"
            return 0
        sock, addr = self.socket.target()
        if sock is None:
            self.dropped += len(payloads)
            return 0
        ntp = clock.current_ntp_time()
        profile, ext = self._extensions_map.set(HeaderExtensions(
            mid=self._mid, abs_send_time=(ntp >> 14) & 0x00FFFFFF))
        if ext:
            first = 0x90
            ext = _EXT_HEADER.pack(profile, len(ext) >> 2) + ext
        else:
            first = 0x80
        sender = self.sender
        ssrc = sender._ssrc
        history = sender._sent
        protect = self._session.protect
        pack = _HEADER.pack
        payload_type = self._payload_type
        seq = self.sequence_number
        last = len(payloads) - 1
        octets = wire = sent = 0
        for i, payload in enumerate(payloads):
            second = payload_type | 0x80 if i == last else payload_type
            data = pack(first, second, seq, timestamp, ssrc) + ext + payload
            history[seq % RTP_HISTORY_SIZE] = data
            protected = protect(data)
            seq = (seq + 1) & 0xFFFF
            octets += len(payload)
            try:
                sock.sendto(protected, addr)
            except OSError as exc:
                if exc.errno not in _DROPPABLE:
                    self.send_errors += 1
                    if self.send_errors == 1:
                        log.warning("%s RTP send to %s failed: %s", self.kind, addr, exc)
                self.dropped += 1
                continue
            wire += len(protected)
            sent += 1
        self.sequence_number = seq
        self.packets += sent
        sender.count_frame(dtls, len(payloads), octets, sent, wire, ntp, timestamp)
        return sent

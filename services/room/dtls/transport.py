"""The room's DTLS-SRTP transport, in place of aiortc's ``aiortc.rtcdtlstransport``.

It is installed under that module's name (:mod:`services.room.stand_ins`), so aiortc's peer
connections, senders, receivers and SCTP transport use it as they would their own:
the same classes and the same calls. Underneath, DTLS (:mod:`.openssl`) and SRTP
(:mod:`.srtp`) run on the system's OpenSSL, so pyOpenSSL, cryptography and pylibsrtp are
never loaded.

What differs from aiortc's:

- **A lost flight costs 50 ms, not 1 s.** When the box joins, its subscriber
  connection is the DTLS client and sends its ClientHello as soon as its own ICE is
  connected; Janus starts DTLS only once its ICE agent has chosen the pair, a moment
  later, and drops what came before. OpenSSL sends it again after 1 s (RFC 6347's
  initial timeout), so about one join in five took over a second to its first audio.
  Here the last flight goes again, the same datagrams, when nothing at all came back
  within :data:`FIRST_RESEND_S`, then after twice that and so on until
  :data:`RESEND_UNTIL_S`, after which OpenSSL's timer has it (libwebrtc starts at
  50 ms). A far end that had the first copy drops the repeat as a duplicate record
  (RFC 6347, 4.1.2.6).
- **Datagrams hold whole records** of at most 1200 bytes (:func:`.openssl.split_records`).
- **DTLS 1.2 at least**, as browsers and Janus speak.
- **An RTP packet from an unsignalled SSRC** whose payload type several receivers take
  goes by its MID (:mod:`.router`).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from aiortc import clock
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtpPacket, is_rtcp
from aiortc.stats import RTCStatsReport, RTCTransportStats
from pyee.asyncio import AsyncIOEventEmitter

from services.room.dtls import openssl
from services.room.dtls.parameters import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    State,
)
from services.room.dtls.router import RtpRouter
from services.room.dtls.srtp import PROFILES, SrtpError, SrtpSession, supported_profiles

__all__ = ["RTCCertificate", "RTCDtlsFingerprint", "RTCDtlsParameters", "RTCDtlsTransport",
           "State"]

log = logging.getLogger(__name__)

#: nothing heard this long after a handshake flight: send it again, then after 2x, 4x...
FIRST_RESEND_S = 0.05
#: ... up to this long after the flight; OpenSSL's own timer (1 s, doubling) takes over
RESEND_UNTIL_S = 0.8
SRTP_LABEL = b"EXTRACTOR-dtls_srtp"


class RTCDtlsTransport(AsyncIOEventEmitter):
    """DTLS over one ICE transport, and the SRTP sessions its handshake keys."""

    def __init__(self, transport: Any, certificates: list[RTCCertificate]) -> None:
        assert len(certificates) == 1, "one certificate per transport"
        super().__init__()
        self.encrypted = False
        self._certificate = certificates[0]
        self._transport = transport
        self._role = "auto"
        self._state = State.NEW
        self._stats_id = f"transport_{id(self)}"
        self._task: asyncio.Future[None] | None = None
        self._conn: openssl.DtlsConnection | None = None
        self._data_receiver: Any = None
        self._rtp_header_extensions_map = HeaderExtensionsMap()
        self._rtp_router = RtpRouter()
        self._rx_srtp: Any = None
        self._tx_srtp: Any = None
        self.srtp_profile = ""
        #: why the handshake failed ("" unless the state is ``failed``)
        self.failure = ""
        #: handshake flights sent again before OpenSSL's timer (see the module)
        self.flights_resent = 0
        self.__rx_bytes = self.__rx_packets = 0
        self.__tx_bytes = self.__tx_packets = 0

    @property
    def state(self) -> str:
        """``new``, ``connecting``, ``connected``, ``closed`` or ``failed``."""
        return self._state.name.lower()

    @property
    def transport(self) -> Any:
        """The ICE transport underneath."""
        return self._transport

    def getLocalParameters(self) -> RTCDtlsParameters:
        return RTCDtlsParameters(fingerprints=self._certificate.getFingerprints())

    async def start(self, remoteParameters: RTCDtlsParameters) -> None:
        """Shake hands with the far end, check its certificate against
        ``remoteParameters`` and key SRTP; the state ends ``connected`` or ``failed``."""
        assert self._state is State.NEW and remoteParameters.fingerprints
        if self._role == "auto":
            self._set_role("server" if self.transport.role == "controlling" else "client")
        profiles = supported_profiles()
        try:
            self._conn = openssl.DtlsConnection(self._certificate._certificate,
                                                server=self._role == "server",
                                                srtp_profiles=profiles)
        except openssl.DtlsError as exc:
            self._fail(str(exc))
            return
        self._set_state(State.CONNECTING)
        try:
            await self._handshake()
        except ConnectionError:
            self._fail("connection error during the handshake")
            return
        except openssl.DtlsError as exc:
            self._fail(str(exc))
            return
        mismatch = self._check_fingerprints(remoteParameters)
        if mismatch:
            self._fail(mismatch)
            return
        try:
            self._key_srtp()
        except (openssl.DtlsError, SrtpError, ValueError) as exc:
            self._fail(f"SRTP keying failed: {exc}")
            return
        self._debug("- DTLS handshake complete (%s)", self.srtp_profile)
        self._set_state(State.CONNECTED)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Send the far end a close_notify and stop receiving."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._conn is not None and self._state in (State.CONNECTING, State.CONNECTED):
            self._conn.shutdown()
            try:
                await self._send_datagrams()
            except ConnectionError:
                pass
            self._debug("- DTLS shutdown complete")

    async def _handshake(self) -> None:
        conn = self._conn
        assert conn is not None
        flight: list[bytes] = []  # our last flight, while nothing came back since
        waited = 0.0
        resend_in = FIRST_RESEND_S  # 0: OpenSSL's timer has it
        while True:
            done = conn.handshake()
            datagrams = conn.datagrams()
            if datagrams:
                await self._send(datagrams)
                if resend_in:  # a new flight: the schedule starts again
                    flight, waited, resend_in = datagrams, 0.0, FIRST_RESEND_S
            if done:
                self.encrypted = True
                return
            timer = conn.timeout()
            resend = bool(flight) and waited + resend_in <= RESEND_UNTIL_S and (
                timer is None or resend_in < timer)
            try:
                data = await asyncio.wait_for(self.transport._recv(),
                                              timeout=resend_in if resend else timer)
            except TimeoutError:
                if resend:
                    waited += resend_in
                    resend_in *= 2
                    self.flights_resent += 1
                    self._debug("x no answer after %.0f ms: flight of %d datagram(s) sent "
                                "again", 1000 * waited, len(flight))
                    await self._send(flight)
                else:  # OpenSSL's timer has the flight from now on, until the far end speaks
                    self._debug("x DTLS handshake timeout (OpenSSL retransmits)")
                    flight, resend_in = [], 0.0
                    conn.handle_timeout()
                continue
            self._count_rx(data)
            flight, resend_in = [], FIRST_RESEND_S  # the far end spoke
            if 19 < data[0] < 64:
                conn.feed(data)

    def _check_fingerprints(self, remote: RTCDtlsParameters) -> str:
        """Why the far end's certificate does not match the fingerprints its description
        gave ("" when it does: every fingerprint in a known algorithm matches, and there
        is at least one)."""
        assert self._conn is not None
        known = [f for f in remote.fingerprints if f.algorithm.lower() in openssl.DIGESTS]
        if not known:
            return "no fingerprint in a known algorithm (sha-256, sha-384, sha-512)"
        for fingerprint in known:
            actual = self._conn.peer_fingerprint(fingerprint.algorithm.lower())
            if actual is None or actual != fingerprint.value.upper():
                return f"the far end's certificate does not match its {fingerprint.algorithm}"
        return ""

    def _key_srtp(self) -> None:
        """Both SRTP sessions, from the handshake's exported keys (RFC 5764, 4.2)."""
        assert self._conn is not None
        profile = self._conn.srtp_profile()
        if profile not in PROFILES:
            raise ValueError(f"no SRTP profile agreed ({profile})")
        key_length, salt_length = PROFILES[profile]
        material = self._conn.keying_material(SRTP_LABEL, 2 * (key_length + salt_length))
        keys = material[:key_length], material[key_length:2 * key_length]
        salts = (material[2 * key_length:2 * key_length + salt_length],
                 material[2 * key_length + salt_length:])
        mine = 1 if self._role == "server" else 0
        self._tx_srtp = SrtpSession(profile, keys[mine] + salts[mine], outbound=True)
        self._rx_srtp = SrtpSession(profile, keys[1 - mine] + salts[1 - mine], outbound=False)
        self.srtp_profile = profile

    async def _run(self) -> None:
        try:
            while True:
                await self._receive(await self.transport._recv())
        except ConnectionError:
            for receiver in list(self._rtp_router.receivers):
                receiver._handle_disconnect()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("DTLS transport (%s) failed:\n%s", self._role, traceback.format_exc())
            raise
        finally:
            self._set_state(State.CLOSED)

    async def _receive(self, data: bytes) -> None:
        self._count_rx(data)
        first = data[0]
        if 19 < first < 64:
            conn = self._conn
            assert conn is not None
            conn.feed(data)
            records, closed = conn.read()
            await self._send_datagrams()  # a handshake retransmission answered
            if self._data_receiver is not None:
                for record in records:
                    await self._data_receiver._handle_data(record)
            if closed:
                self._debug("- DTLS shutdown by the far end")
                raise ConnectionError
        elif 127 < first < 192 and self._rx_srtp is not None:
            arrival_ms = clock.current_ms()
            try:
                if is_rtcp(data):
                    await self._route_rtcp(self._rx_srtp.unprotect_rtcp(data))
                else:
                    await self._route_rtp(self._rx_srtp.unprotect(data), arrival_ms)
            except SrtpError as exc:
                self._debug("x SRTP unprotect failed: %s", exc)

    async def _route_rtcp(self, data: bytes) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except ValueError as exc:
            self._debug("x RTCP parsing failed: %s", exc)
            return
        for packet in packets:
            for recipient in self._rtp_router.route_rtcp(packet):
                await recipient._handle_rtcp_packet(packet)

    async def _route_rtp(self, data: bytes, arrival_ms: int) -> None:
        try:
            packet = RtpPacket.parse(data, self._rtp_header_extensions_map)
        except ValueError as exc:
            self._debug("x RTP parsing failed: %s", exc)
            return
        receiver = self._rtp_router.route_rtp(packet)
        if receiver is not None:
            await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_ms)

    def _get_stats(self) -> RTCStatsReport:
        report = RTCStatsReport()
        report.add(RTCTransportStats(
            timestamp=clock.current_datetime(), type="transport", id=self._stats_id,
            packetsSent=self.__tx_packets, packetsReceived=self.__rx_packets,
            bytesSent=self.__tx_bytes, bytesReceived=self.__rx_bytes,
            iceRole=self.transport.role, dtlsState=self.state))
        return report

    def _register_data_receiver(self, receiver: Any) -> None:
        assert self._data_receiver is None
        self._data_receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        if self._data_receiver is receiver:
            self._data_receiver = None

    def _register_rtp_receiver(self, receiver: Any, parameters: Any) -> None:
        self._rtp_header_extensions_map.configure(parameters)
        self._rtp_router.register_receiver(
            receiver, ssrcs=list({encoding.ssrc for encoding in parameters.encodings}),
            payload_types=[codec.payloadType for codec in parameters.codecs],
            mid=parameters.muxId)

    def _unregister_rtp_receiver(self, receiver: Any) -> None:
        self._rtp_router.unregister_receiver(receiver)

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None:
        self._rtp_header_extensions_map.configure(parameters)
        self._rtp_router.register_sender(sender, ssrc=sender._ssrc)

    def _unregister_rtp_sender(self, sender: Any) -> None:
        self._rtp_router.unregister_sender(sender)

    async def _send_data(self, data: bytes) -> None:
        """An SCTP packet, as DTLS application data."""
        if self._state is not State.CONNECTED or self._conn is None:
            raise ConnectionError("Cannot send encrypted data, not connected")
        self._conn.write(data)
        await self._send_datagrams()

    async def _send_rtp(self, data: bytes) -> None:
        """An RTP or RTCP packet, protected."""
        if self._state is not State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        session = self._tx_srtp
        data = session.protect_rtcp(data) if is_rtcp(data) else session.protect(data)
        await self.transport._send(data)
        self.__tx_bytes += len(data)
        self.__tx_packets += 1

    def _set_role(self, role: str) -> None:
        self._role = role

    def _set_state(self, state: State) -> None:
        if state is not self._state:
            self._debug("- %s -> %s", self._state, state)
            self._state = state
            self.emit("statechange")

    def _fail(self, reason: str) -> None:
        self._debug("x DTLS failed: %s", reason)
        self.failure = reason
        self._set_state(State.FAILED)

    async def _send_datagrams(self) -> None:
        if self._conn is not None:
            await self._send(self._conn.datagrams())

    async def _send(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            await self.transport._send(datagram)
            self.__tx_bytes += len(datagram)
            self.__tx_packets += 1

    def _count_rx(self, data: bytes) -> None:
        self.__rx_bytes += len(data)
        self.__rx_packets += 1

    def _debug(self, message: str, *args: object) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("RTCDtlsTransport(%s) %s", self._role, message % args)

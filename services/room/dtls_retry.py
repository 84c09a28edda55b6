"""DTLS handshake flights sent again on a LAN's schedule, not OpenSSL's 1 s.

When the box joins, its subscriber connection is the DTLS client: it sends its
ClientHello as soon as its own ICE is connected. Janus starts DTLS on its side only once
its ICE agent has chosen the pair, a moment later, and drops what came before. OpenSSL
then sends the hello again after its first retransmission timeout, 1 s (RFC 6347's
initial value), so about one join in five took 1.05-1.17 s to the first audio instead
of about 0.12 s (`python -m bench audio`: 4 of 20 and 3 of 20 joins in two runs; the
log showed the ClientHello sent 1 ms after aiortc's ICE completed, and sent again by
OpenSSL 1 s later). libwebrtc starts its DTLS retransmissions at 50 ms.

:func:`install` makes aiortc's DTLS transports send the last flight they sent again, the
same datagrams byte for byte, when no answer has come within :data:`FIRST_S`, then after
twice that, and so on, until OpenSSL's own timer takes over. A far end that got the
first copy discards the repeat as a duplicate record (RFC 6347, 4.1.2.6); one that
dropped it now gets it. OpenSSL's state is not touched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from OpenSSL import SSL

log = logging.getLogger(__name__)

#: No answer this long after a flight: send it again (then after 2x, 4x, ...).
FIRST_S = 0.05
#: Leave the rest to OpenSSL's own retransmission (first at 1 s) after this long.
UNTIL_S = 0.8

#: aiortc's own, as they came
AIORTC_WRITE_SSL = RTCDtlsTransport._write_ssl
AIORTC_RECV_NEXT = RTCDtlsTransport._recv_next


class _Flight:
    """The datagrams this transport sent since it last heard from the far end."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self.heard = -1  # datagrams received when it started
        self.timed_out = False  # OpenSSL's own timer took over
        self.resent = 0


def _heard(dtls: RTCDtlsTransport) -> int:
    return int(dtls._RTCDtlsTransport__rx_packets)  # type: ignore[attr-defined]


def _flight(dtls: Any) -> _Flight:
    flight: _Flight | None = getattr(dtls, "_edgeroom_flight", None)
    if flight is None:
        flight = dtls._edgeroom_flight = _Flight()
    return flight


async def _write_ssl(self: RTCDtlsTransport) -> None:
    assert self._ssl is not None
    try:
        data = self._ssl.bio_read(1500)
    except SSL.Error:
        data = b""
    if not data:
        return
    if not self.encrypted:
        flight, heard = _flight(self), _heard(self)
        if flight.heard != heard:  # the far end spoke since: a new flight
            flight.datagrams, flight.heard, flight.timed_out = [], heard, False
        flight.datagrams.append(data)
    await self.transport._send(data)
    self._RTCDtlsTransport__tx_bytes += len(data)  # type: ignore[attr-defined]
    self._RTCDtlsTransport__tx_packets += 1  # type: ignore[attr-defined]


async def _recv_next(self: RTCDtlsTransport) -> None:
    flight = _flight(self)
    if (self.encrypted or not flight.datagrams or flight.timed_out
            or flight.heard != _heard(self)):
        await AIORTC_RECV_NEXT(self)
        return
    await _recv_resending(self, flight)
    if flight.heard == _heard(self):  # back on OpenSSL's timeout: it times the rest
        flight.timed_out = True


async def _recv_resending(self: RTCDtlsTransport, flight: _Flight) -> None:
    """aiortc's receive, with the flight sent again while it waits."""
    receiving = asyncio.ensure_future(AIORTC_RECV_NEXT(self))
    waited, delay = 0.0, FIRST_S
    try:
        while waited + delay <= UNTIL_S:
            done, _ = await asyncio.wait({receiving}, timeout=delay)
            if done:
                break
            waited += delay
            delay *= 2
            try:
                for datagram in flight.datagrams:
                    await self.transport._send(datagram)
            except ConnectionError:
                break
            flight.resent += 1
            log.debug("DTLS (%s): no answer after %.0f ms: flight of %d datagram(s) sent "
                      "again", self._role, 1000 * waited, len(flight.datagrams))
        await receiving
    except BaseException:
        receiving.cancel()
        raise


def install() -> None:
    """Every aiortc DTLS transport from now on (idempotent)."""
    RTCDtlsTransport._write_ssl = _write_ssl  # type: ignore[method-assign]
    RTCDtlsTransport._recv_next = _recv_next  # type: ignore[method-assign]

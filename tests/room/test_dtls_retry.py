"""A DTLS flight the far end dropped is sent again after 50 ms, not after OpenSSL's 1 s.

Two of aiortc's real DTLS transports (OpenSSL underneath) shake hands over an in-memory
datagram pair standing in for ICE; the pair drops the client's first datagram, as Janus
drops a ClientHello that comes before its ICE agent is ready.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport

from services.room import dtls_retry


class _End:
    """One end of an in-memory datagram pair, with what aiortc's DTLS uses of ICE."""

    def __init__(self, role: str, drop_first: bool = False) -> None:
        self.role = role
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: _End | None = None
        self.sent = 0
        self.dropped = 0
        self._drop_first = drop_first

    async def _send(self, data: bytes) -> None:
        self.sent += 1
        if self._drop_first and self.sent == 1:
            self.dropped += 1
            return
        assert self.peer is not None
        self.peer.inbox.put_nowait(data)

    async def _recv(self) -> bytes:
        return await self.inbox.get()


async def _handshake(monkeypatch: pytest.MonkeyPatch, retry: bool) -> dict[str, Any]:
    """Both ends' handshake times, OpenSSL's own timeouts, and the flights sent again."""
    timeouts: list[str] = []
    original = dtls_retry.AIORTC_RECV_NEXT

    async def counting(self: RTCDtlsTransport) -> None:  # aiortc's, counting timeouts
        before = self._RTCDtlsTransport__rx_packets  # type: ignore[attr-defined]
        await original(self)
        if self._RTCDtlsTransport__rx_packets == before:  # type: ignore[attr-defined]
            timeouts.append(self._role)

    monkeypatch.setattr(RTCDtlsTransport, "_write_ssl", dtls_retry.AIORTC_WRITE_SSL)
    monkeypatch.setattr(RTCDtlsTransport, "_recv_next", counting)
    if retry:
        monkeypatch.setattr(dtls_retry, "AIORTC_RECV_NEXT", counting)
        dtls_retry.install()

    client_end, server_end = _End("controlled", drop_first=True), _End("controlling")
    client_end.peer, server_end.peer = server_end, client_end
    client = RTCDtlsTransport(client_end, [RTCCertificate.generateCertificate()])  # type: ignore[arg-type]
    server = RTCDtlsTransport(server_end, [RTCCertificate.generateCertificate()])  # type: ignore[arg-type]
    client._set_role("client")
    server._set_role("server")
    loop = asyncio.get_running_loop()
    start = loop.time()
    done: dict[str, float] = {}

    async def run(dtls: RTCDtlsTransport, peer: RTCDtlsTransport, name: str) -> None:
        await dtls.start(peer.getLocalParameters())
        assert dtls.state == "connected"
        done[name] = loop.time() - start

    try:
        await asyncio.wait_for(asyncio.gather(run(client, server, "client"),
                                              run(server, client, "server")), 10)
    finally:
        await client.stop()
        await server.stop()
    assert client_end.dropped == 1
    flight = getattr(client, "_edgeroom_flight", None)
    return {"done": done, "timeouts": timeouts, "resent": flight.resent if flight else 0}


def test_without_it_openssl_waits_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    got = asyncio.run(_handshake(monkeypatch, retry=False))
    assert got["timeouts"] == ["client"], got  # the hello went again on OpenSSL's timer
    assert got["done"]["client"] >= 0.9, got


def test_the_dropped_hello_goes_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    got = asyncio.run(_handshake(monkeypatch, retry=True))
    assert got["timeouts"] == [] and got["resent"] == 1, got  # OpenSSL's timer never fired
    assert got["done"]["client"] < 0.9, got

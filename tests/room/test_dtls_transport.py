"""The room's DTLS-SRTP transport (on the system's OpenSSL) against itself and against
aiortc's own (pyOpenSSL, pylibsrtp), over an in-memory datagram pair standing in for ICE.

Both ends are real: real handshakes, real certificates, real SRTP. aiortc's own module is
loaded from its file under another name, so the two implementations meet as a box and a
plain aiortc client would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aiortc
import pytest

import services.room.dtls.transport as ours
from services.room.dtls import openssl
from services.room.stand_ins import installed, original

ROOT = Path(__file__).resolve().parents[2]


def _aiortc_own() -> ModuleType:
    return original("aiortc.rtcdtlstransport")


class _End:
    """One end of an in-memory datagram pair, with what a DTLS transport uses of ICE."""

    def __init__(self, role: str, drop: set[int] | None = None) -> None:
        self.role = role
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: _End | None = None
        self.sent: list[bytes] = []
        self._drop = drop or set()
        self.closed = False

    async def _send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("closed")
        self.sent.append(data)
        if len(self.sent) not in self._drop:
            assert self.peer is not None
            self.peer.inbox.put_nowait(data)

    async def _recv(self) -> bytes:
        data = await self.inbox.get()
        if not data:
            raise ConnectionError("closed")
        return data

    def close(self) -> None:
        self.closed = True
        self.inbox.put_nowait(b"")


def _pair(client_kind: Any, server_kind: Any, drop: set[int] | None = None) -> tuple[Any, Any]:
    client_end, server_end = _End("controlled", drop), _End("controlling")
    client_end.peer, server_end.peer = server_end, client_end
    client = client_kind.RTCDtlsTransport(
        client_end, [client_kind.RTCCertificate.generateCertificate()])
    server = server_kind.RTCDtlsTransport(
        server_end, [server_kind.RTCCertificate.generateCertificate()])
    client._set_role("client")
    server._set_role("server")
    return client, server


async def _connect(client: Any, server: Any, client_params: Any = None,
                   server_params: Any = None) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    start, done = loop.time(), {}

    async def run(dtls: Any, params: Any, name: str) -> None:
        await dtls.start(params)
        done[name] = loop.time() - start

    await asyncio.wait_for(asyncio.gather(
        run(client, client_params or server.getLocalParameters(), "client"),
        run(server, server_params or client.getLocalParameters(), "server")), 10)
    return done


def _rtp(seq: int, ssrc: int = 0x1234, size: int = 160) -> bytes:
    return bytes([0x80, 111]) + seq.to_bytes(2, "big") + (seq * 960).to_bytes(4, "big") \
        + ssrc.to_bytes(4, "big") + os.urandom(size)


@pytest.mark.parametrize("client_kind,server_kind",
                         [("ours", "ours"), ("ours", "aiortc"), ("aiortc", "ours")])
def test_handshake_and_srtp_both_ways(client_kind: str, server_kind: str) -> None:
    kinds = {"ours": ours, "aiortc": _aiortc_own()}

    async def main() -> None:
        client, server = _pair(kinds[client_kind], kinds[server_kind])
        try:
            await _connect(client, server)
            assert client.state == "connected" and server.state == "connected"
            for tx, rx in ((client, server), (server, client)):
                packets = [_rtp(65530 + i & 0xFFFF) for i in range(12)]  # across the wrap
                for packet in packets:
                    protected = tx._tx_srtp.protect(packet)
                    assert protected[:12] == packet[:12] and protected[12:] != packet[12:]
                    assert rx._rx_srtp.unprotect(protected) == packet
                tampered = bytearray(tx._tx_srtp.protect(_rtp(9)))
                tampered[20] ^= 1
                with pytest.raises(Exception, match=r"auth|fail"):
                    rx._rx_srtp.unprotect(bytes(tampered))
        finally:
            await client.stop()
            await server.stop()

    asyncio.run(main())


def test_sctp_records_and_close_notify() -> None:
    class Sink:
        def __init__(self) -> None:
            self.data: list[bytes] = []

        async def _handle_data(self, data: bytes) -> None:
            self.data.append(data)

    class Receiver:
        disconnected = 0

        def _handle_disconnect(self) -> None:
            self.disconnected += 1

    async def main() -> None:
        client, server = _pair(ours, _aiortc_own())
        sink, mine, receiver = Sink(), Sink(), Receiver()
        server._register_data_receiver(sink)
        client._register_data_receiver(mine)
        client._rtp_router.receivers.add(receiver)
        await _connect(client, server)
        await client._send_data(b"hello over DTLS")
        await server._send_data(b"and back")
        for _ in range(100):
            if sink.data and mine.data:
                break
            await asyncio.sleep(0.01)
        assert sink.data == [b"hello over DTLS"] and mine.data == [b"and back"]
        await server.stop()  # close_notify: our end's receive loop ends
        for _ in range(100):
            if client.state == "closed":
                break
            await asyncio.sleep(0.01)
        assert client.state == "closed" and receiver.disconnected == 1
        with pytest.raises(ConnectionError):
            await client._send_data(b"after the close")
        await client.stop()

    asyncio.run(main())


@pytest.mark.parametrize("resend", [True, False])
def test_a_dropped_hello_goes_again_after_50_ms(monkeypatch: pytest.MonkeyPatch,
                                                resend: bool) -> None:
    """Without the resend (its first delay past OpenSSL's timer), OpenSSL's own 1 s timer
    sends the hello again."""
    if not resend:
        monkeypatch.setattr(ours, "FIRST_RESEND_S", 5.0)

    async def main() -> tuple[dict[str, float], int]:
        client, server = _pair(ours, ours, drop={1})
        try:
            done = await _connect(client, server)
        finally:
            await client.stop()
            await server.stop()
        return done, client.flights_resent

    done, resent = asyncio.run(main())
    if resend:
        assert resent == 1 and done["client"] < 0.9, (done, resent)
    else:
        assert resent == 0 and done["client"] >= 0.9, (done, resent)


def test_a_certificate_that_does_not_match_fails() -> None:
    async def main() -> None:
        client, server = _pair(ours, _aiortc_own())
        other = ours.RTCCertificate.generateCertificate()
        wrong = ours.RTCDtlsParameters(fingerprints=other.getFingerprints()[:1])
        await _connect(client, server, client_params=wrong)
        assert client.state == "failed" and "sha-256" in client.failure
        assert client._tx_srtp is None and client._rx_srtp is None
        await client.stop()
        await server.stop()

    asyncio.run(main())


def test_no_known_fingerprint_fails() -> None:
    async def main() -> None:
        client, server = _pair(ours, ours)
        md5 = ours.RTCDtlsParameters(fingerprints=[ours.RTCDtlsFingerprint("md5", "AA:BB")])
        await _connect(client, server, client_params=md5)
        assert client.state == "failed" and "known algorithm" in client.failure
        await client.stop()
        await server.stop()

    asyncio.run(main())


def test_garbage_and_a_vanishing_far_end() -> None:
    async def main() -> None:
        client, server = _pair(ours, ours)
        await _connect(client, server)
        for junk in (b"\x17" + os.urandom(40), b"\x80" + os.urandom(30), b"\x01\x02", b"\xff"):
            client.transport.peer.inbox.put_nowait(junk)  # to the server
        await asyncio.sleep(0.05)
        assert server.state == "connected"
        server.transport.close()  # ICE gone
        for _ in range(100):
            if server.state == "closed":
                break
            await asyncio.sleep(0.01)
        assert server.state == "closed"
        await client.stop()

    asyncio.run(main())


def test_handshake_failure_on_a_far_end_speaking_nonsense() -> None:
    async def main() -> None:
        client, server = _pair(ours, ours)
        server.transport.peer = None

        async def nonsense() -> None:
            while True:
                data = await server.transport.inbox.get()
                if data[0] == 22:  # answer the hello with a fatal alert record
                    client.transport.inbox.put_nowait(
                        bytes([21, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40]))

        task = asyncio.ensure_future(nonsense())
        await asyncio.wait_for(client.start(server.getLocalParameters()), 5)
        task.cancel()
        assert client.state == "failed" and client.failure
        await client.stop()

    asyncio.run(main())


def test_split_records() -> None:
    def record(size: int) -> bytes:
        return bytes([22, 0xFE, 0xFD]) + bytes(8) + size.to_bytes(2, "big") + bytes(size)

    small, big = record(300), record(1500)
    assert openssl.split_records(small * 3) == [small * 3]
    assert openssl.split_records(small * 4 + big + small) == [small * 3, small, big, small]
    assert openssl.split_records(b"\x16\x01") == [b"\x16\x01"]
    assert b"".join(openssl.split_records(record(1000) * 5)) == record(1000) * 5


def test_the_fingerprint_is_the_certificate_digest() -> None:
    certificate = ours.RTCCertificate.generateCertificate()
    prints = {f.algorithm: f.value for f in certificate.getFingerprints()}
    assert set(prints) == {"sha-256", "sha-384", "sha-512"}
    assert len(bytes.fromhex(prints["sha-256"].replace(":", ""))) == 32
    assert prints != {f.algorithm: f.value
                      for f in ours.RTCCertificate.generateCertificate().getFingerprints()}


_PROBE = """
import sys
{first}
import aiortc
from aiortc.rtcdtlstransport import RTCDtlsTransport
pc = aiortc.RTCPeerConnection()
print(RTCDtlsTransport.__module__, aiortc.RTCPeerConnection.__module__)
print(sorted(m for m in ("OpenSSL", "cryptography", "dns", "pylibsrtp") if m in sys.modules))
"""


@pytest.mark.parametrize("first,module,loaded", [
    ("import services", "services.room.dtls.transport", "[]"),
    ("import aiortc\nimport services", "aiortc.rtcdtlstransport",
     "['OpenSSL', 'cryptography', 'dns', 'pylibsrtp']"),
])
def test_installed_when_services_is_imported_first(first: str, module: str,
                                                   loaded: str) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE.format(first=first)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == module and lines[1] == loaded, result
    if module == "aiortc.rtcdtlstransport":
        assert "imported before the room's own could stand in, so kept: " \
            "aiortc.rtcdtlstransport, aioice.mdns" in result.stderr


def test_this_process_runs_on_it() -> None:
    # tests/conftest.py imports services first, as the appliance does
    assert installed("aiortc.rtcdtlstransport") and installed("aioice.mdns")
    assert aiortc.RTCDtlsTransport is ours.RTCDtlsTransport


def test_it_offers_all_aiortc_asks_of_its_own() -> None:
    """Every name aiortc's modules import from ``.rtcdtlstransport``, and every method
    they call on a DTLS transport, exists here (when aiortc is raised, this names what
    moved)."""
    import re

    package = Path(aiortc.__file__).parent
    dtls = ours.RTCDtlsTransport(object(), [ours.RTCCertificate.generateCertificate()])
    for path in package.glob("*.py"):
        if path.name == "rtcdtlstransport.py":  # the module replaced
            continue
        source = path.read_text()
        for block in re.findall(r"from \.rtcdtlstransport import \(?([^)]*?)\)?\n(?!\s)",
                                source):
            for name in re.findall(r"\w+", block):
                assert hasattr(ours, name), f"{path.name} imports {name}"
        if path.name not in ("rtcrtpsender.py", "rtcrtpreceiver.py", "rtcsctptransport.py",
                             "rtcpeerconnection.py"):  # where a "transport" is the DTLS one
            continue
        for name in set(re.findall(
                r"(?:dtlsTransport|self\.transport|self\.__transport)\.(_[a-z]\w*)", source)):
            assert hasattr(dtls, name), f"{path.name} uses the DTLS transport's {name}"


@pytest.mark.janus
@pytest.mark.timeout(60)
def test_the_profile_the_room_server_picked_is_logged(make_peer: Any, room_number: int,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import re

    from services.room.dtls.srtp import PROFILES
    from services.room.rtc import srtp_profiles

    caplog.set_level(logging.INFO, logger="services.room.rtc")
    box = make_peer("box", room_number, tone="tone:440")
    box.call(lambda s: s.join())
    connected = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("publisher peer connection: connecting -> ")]
    assert len(connected) == 1, connected
    found = re.fullmatch(r"publisher peer connection: connecting -> connected "
                         r"\(media keys: (\w+)\)", connected[0])
    assert found is not None, connected[0]
    assert found[1] in PROFILES
    # what the line says is what protects the media
    assert srtp_profiles(box.session._backend.pub_pc) == [found[1]]
    sender = box.session._backend.pub_pc.getTransceivers()[0].sender
    tx = sender.transport._tx_srtp
    assert getattr(tx, "session", tx).profile == found[1]

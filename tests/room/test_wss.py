"""A room server on secure WebSockets (``wss://``) with a certificate of its own, as a
Janus behind TLS on a LAN usually has: the box joins with ``room.ca_file`` naming the
PEM file it trusts, and without it says what is wrong and what to set."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.room.api import RoomState
from services.room.janus.jcfg import RoomSpec
from tests.harness.fixtures import ROOM_SECRET
from tests.harness.janus import JanusServer
from tests.harness.netns import Network
from tests.room.conftest import wait_tone
from tests.room.test_codecs import Box

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

ROOM = 1001


def self_signed(directory: Path, ip: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``ip`` (P-256, one day), as (certificate, key)."""
    cert, key = directory / "janus-cert.pem", directory / "janus-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=janus", "-addext", f"subjectAltName=IP:{ip}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture(scope="module")
def tls_janus(network: Network, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[JanusServer, Path]]:
    host = network.add_host("jtls")
    workdir = tmp_path_factory.mktemp("janus-tls")
    cert, key = self_signed(workdir, host.ip)
    server = JanusServer(host, workdir, (RoomSpec(ROOM, secret=ROOM_SECRET),),
                         wss_cert=(str(cert), str(key)))
    server.start()
    try:
        yield server, cert
    finally:
        server.stop()


def _box(network: Network, tmp_path: Path, url: str, ca_file: str | None) -> Box:
    return Box(network, url, ROOM, tmp_path, ca_file=ca_file)


def test_the_box_joins_a_wss_server_it_is_told_to_trust(network: Network, tmp_path: Path,
                                                       tls_janus: Any, make_peer: Any) -> None:
    server, cert = tls_janus
    box = _box(network, tmp_path, server.wss_url, str(cert))
    try:
        box.run(box.session.join())
        assert box.session.state == RoomState.IN_ROOM
        ada = make_peer("ada", ROOM, tone="tone:600", url=server.wss_url, ca_file=str(cert))
        ada.call(lambda s: s.join())
        wait_tone(box.speaker, 600, timeout=20)
        wait_tone(ada.speaker_path, 440, timeout=20)
    finally:
        box.close()


@pytest.mark.parametrize("ca", ["none", "missing"])
def test_an_untrusted_wss_server_says_what_to_set(network: Network, tmp_path: Path,
                                                 tls_janus: Any, ca: str) -> None:
    server, _ = tls_janus
    ca_file = None if ca == "none" else str(tmp_path / "nowhere.pem")
    box = _box(network, tmp_path, server.wss_url, ca_file)
    try:
        box.loop.submit(box.session.join())
        deadline = time.monotonic() + 15
        while not box.events.named("reconnecting") and time.monotonic() < deadline:
            time.sleep(0.1)
        reason = box.events.named("reconnecting")[0]["reason"]
        if ca == "none":
            assert "certificate" in reason and "set room.ca_file" in reason, reason
        else:
            assert "room.ca_file" in reason and "not a readable PEM" in reason, reason
        assert box.session.state != RoomState.IN_ROOM
    finally:
        box.close()


def test_the_doctor_checks_the_server_as_the_box_does(network: Network, tmp_path: Path,
                                                     tls_janus: Any, edgeroom_cmd: list[str],
                                                     clean_env: dict[str, str]) -> None:
    """``edgeroom doctor`` trusts what the room trusts: with ``ca_file`` the server
    passes, and without it the reason says what to set."""
    server, cert = tls_janus
    host = network.add_host("doctor")
    for ca_file in (str(cert), None):
        cfg = tmp_path / "doctor.toml"
        cfg.write_text(f'[room]\nserver = "{server.wss_url}"\n'
                       + (f'ca_file = "{ca_file}"\n' if ca_file else ""))
        res = subprocess.run([*host.exec_prefix(), *edgeroom_cmd, "doctor", "--sim",
                              "--config", str(cfg), "--state-dir", str(tmp_path / "st")],
                             env=clean_env, capture_output=True, text=True, timeout=90)
        [line] = [ln for ln in res.stdout.splitlines() if "room server" in ln]
        if ca_file:
            assert line.startswith("PASS room server:"), res.stdout + res.stderr
        else:
            assert line.startswith("FAIL room server:") and "set room.ca_file" in line, line


def test_a_link_checks_its_wss_server_against_its_own_ca_file(network: Network,
                                                              tls_janus: Any) -> None:
    """A link's far room (or the box's own server, for a link from it) on ``wss://``
    is checked against the link's ``ca_file``, and the reason names that key."""
    from services.room.api import ServerUnreachable
    from services.room.links.requests import open_channel
    from services.room.links.settings import RoomEnd
    from tests.harness.netns import NsLoop

    server, cert = tls_janus
    loop = NsLoop(network.add_host("linker"))

    async def channel(ca_file: str | None) -> str:
        end = RoomEnd(url=server.wss_url, room=ROOM, ca_file=ca_file)
        conn, room = await open_channel(end, lambda *_: None)
        try:
            return repr(room)
        finally:
            await room.close()
            await conn.close()

    try:
        assert "open=True" in loop.run(channel(str(cert)), 30)
        with pytest.raises(ServerUnreachable, match=r"set link\.ca_file to the PEM file"):
            loop.run(channel(None), 30)
    finally:
        loop.close()

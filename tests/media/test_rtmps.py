"""RTMPS: the server's certificate is checked before the stream key is sent.

nginx-rtmp has no TLS of its own: ``socat`` terminates TLS in front of it on loopback,
with certificates made here (a CA of the test's own, a server certificate for 127.0.0.1
and one for another name). What reaches nginx is the box's stream; what nginx records
is what was published.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.config import load as load_config
from device.doctor import run_checks
from device.settings import media as media_settings
from services.media.mux import MuxError
from services.media.netout import NetworkOutput

from .conftest import RtmpServer, free_port, probe
from .helpers import Events, make_service

pytestmark = pytest.mark.slow

KEY = "secret-stream-key"


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, and two server certificates it signed: for 127.0.0.1, and for another
    name. PEM files: ``ca``, ``server`` and ``elsewhere`` (certificate and key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgeroom test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, alt in (("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
                      ("elsewhere", x509.DNSName("elsewhere.example"))):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return paths


class TlsFront:
    """socat: TLS on ``127.0.0.1:port`` with ``cert``, plain TCP on to ``to_port``."""

    def __init__(self, cert: Path, to_port: int) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["socat", f"OPENSSL-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,"
             f"cert={cert},verify=0", f"TCP:127.0.0.1:{to_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("socat did not listen")

    def url(self) -> str:
        return f"rtmps://127.0.0.1:{self.port}/live/{KEY}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    if shutil.which("socat") is None:
        pytest.fail("socat is required (scripts/deps.sh installs it)")
    folder = tmp_path / "pki"
    folder.mkdir()
    return make_pki(folder)


@pytest.fixture
def front(pki: dict[str, Path], rtmp_server: RtmpServer) -> Iterator[TlsFront]:
    tls = TlsFront(pki["server"], rtmp_server.port)
    yield tls
    tls.stop()


async def test_a_server_signed_by_the_configured_ca_gets_the_stream(
        tmp_path: Path, pki: dict[str, Path], front: TlsFront,
        rtmp_server: RtmpServer) -> None:
    events = Events()
    media = make_service(tmp_path, events)
    media.streamer.ca_file = str(pki["ca"])
    try:
        await asyncio.wait_for(media.start_stream(front.url()), 10)
        await events.wait_for("stream-started", timeout=20)
        await asyncio.sleep(3)
        assert media.status()["stream"]["state"] == "live"
        await asyncio.wait_for(media.stop_stream(), 10)
    finally:
        await asyncio.wait_for(media.close(), 10)
    rtmp_server.stop()
    [flv] = rtmp_server.recordings()
    assert KEY in flv.name  # published under its key, through the TLS front
    got = probe(flv)
    assert got["errors"] == [] and got["video_codec"] == "h264"
    assert len(got["frame_numbers"]) > 60


async def test_a_server_the_system_does_not_trust_gets_nothing(
        tmp_path: Path, front: TlsFront, rtmp_server: RtmpServer) -> None:
    """No ``stream.ca_file``: the system's CAs, which did not sign the test's server."""
    events = Events()
    media = make_service(tmp_path, events)
    try:
        await asyncio.wait_for(media.start_stream(front.url()), 10)
        event = await events.wait_for("stream-reconnecting", timeout=30)
        status = media.status()["stream"]
        assert status["state"] == "reconnecting"
        await asyncio.wait_for(media.stop_stream(), 10)
    finally:
        await asyncio.wait_for(media.close(), 10)
    error = event["error"]
    assert error == status["last_error"]
    assert error.startswith(f"cannot trust the server at rtmps://127.0.0.1:{front.port}: "
                            "its certificate is not signed by a CA of the system")
    assert "set stream.ca_file to the PEM file" in error
    assert KEY not in error
    assert not events.named("stream-started")
    rtmp_server.stop()
    assert rtmp_server.recordings() == []  # nothing was published


async def test_a_certificate_for_another_name_is_refused(
        tmp_path: Path, pki: dict[str, Path], rtmp_server: RtmpServer) -> None:
    tls = TlsFront(pki["elsewhere"], rtmp_server.port)
    events = Events()
    media = make_service(tmp_path, events)
    media.streamer.ca_file = str(pki["ca"])
    try:
        await asyncio.wait_for(media.start_stream(tls.url()), 10)
        event = await events.wait_for("stream-reconnecting", timeout=30)
        await asyncio.wait_for(media.stop_stream(), 10)
    finally:
        await asyncio.wait_for(media.close(), 10)
        tls.stop()
    assert event["error"].startswith(f"cannot trust the server at rtmps://127.0.0.1:"
                                     f"{tls.port}: its certificate is not for 127.0.0.1")
    rtmp_server.stop()
    assert rtmp_server.recordings() == []


def test_an_unreadable_ca_file_is_named(tmp_path: Path) -> None:
    out = NetworkOutput(f"rtmps://127.0.0.1:1/live/{KEY}", timeout=1,
                        ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(MuxError, match=r"^stream.ca_file .*missing.pem: not a readable PEM"):
        out.open()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    out = NetworkOutput(f"rtmps://127.0.0.1:1/live/{KEY}", timeout=1, ca_file=str(garbage))
    with pytest.raises(MuxError, match=r"garbage.pem: not a readable PEM"):
        out.open()


async def test_the_doctor_checks_the_stream_server_without_publishing(
        tmp_path: Path, pki: dict[str, Path], front: TlsFront,
        rtmp_server: RtmpServer) -> None:
    def doctor(**stream: str) -> str:
        config_file = tmp_path / "edgeroom.toml"
        config_file.write_text("[stream]\n" + "".join(f'{k} = "{v}"\n'
                                                     for k, v in stream.items()))
        results = asyncio.run(run_checks(load_config(config_file), tmp_path / "state",
                                         sim=True))
        [line] = [r.line() for r in results if r.name == "stream server"]
        assert KEY not in line
        return line

    trusted = await asyncio.to_thread(doctor, rtmp_url=front.url(), ca_file=str(pki["ca"]))
    assert trusted == (f"PASS stream server: rtmps://127.0.0.1:{front.port}/live/***: its "
                       f"certificate is trusted (signed by stream.ca_file ({pki['ca']}))")
    untrusted = await asyncio.to_thread(doctor, rtmp_url=front.url())
    assert untrusted.startswith(f"FAIL stream server: MuxError: cannot trust the server at "
                                f"rtmps://127.0.0.1:{front.port}: its certificate is not "
                                "signed by a CA of the system")
    plain = await asyncio.to_thread(doctor, rtmp_url=rtmp_server.url(KEY))
    assert plain == (f"PASS stream server: rtmp://127.0.0.1:{rtmp_server.port}/live/***: "
                     "accepts connections")
    refused = await asyncio.to_thread(doctor, rtmp_url=f"rtmp://127.0.0.1:{free_port()}/a/b")
    assert refused.startswith("FAIL stream server: ConnectionRefusedError")
    assert (await asyncio.to_thread(doctor)).startswith("SKIP stream server")
    rtmp_server.stop()
    assert rtmp_server.recordings() == []  # nothing was published


def test_the_config_key_reaches_the_streamer(tmp_path: Path) -> None:
    config_file = tmp_path / "edgeroom.toml"
    config_file.write_text('[stream]\nca_file = "/etc/edgeroom/rtmp-ca.pem"\n')
    assert media_settings(load_config(config_file)).stream_ca_file == \
        "/etc/edgeroom/rtmp-ca.pem"

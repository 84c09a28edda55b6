"""A per-device self-signed certificate for the config page's HTTPS.

Made on first start with HTTPS enabled (never baked into an image) and kept in the
state dir: ``tls-key.pem`` (mode 0600) and ``tls-cert.pem``.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
from pathlib import Path

from drivers.common.atomicfile import atomic_write

log = logging.getLogger(__name__)

KEY_FILE = "tls-key.pem"
CERT_FILE = "tls-cert.pem"
VALID_DAYS = 3650


def ensure_certificate(state_dir: Path, host: str = "") -> tuple[Path, Path]:
    """The (cert, key) paths, made now if either file is missing."""
    cert_path, key_path = Path(state_dir) / CERT_FILE, Path(state_dir) / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    # The certificate library is loaded only when HTTPS is on and a certificate is due.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified and ip != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(ip))
    except ValueError:
        if host and host != hostname:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeroom appliance")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    atomic_write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":")
    log.info("made a self-signed certificate for the config page, SHA-256 %s", fingerprint)
    return cert_path, key_path


def server_context(state_dir: Path, host: str = "") -> ssl.SSLContext:
    cert_path, key_path = ensure_certificate(state_dir, host)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    return ctx

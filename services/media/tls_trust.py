"""What an ``rtmps://`` server's certificate is checked against, and why a check failed.

FFmpeg's TLS protocol checks nothing unless asked to (``tls_verify``), so without this
an RTMPS push handed its stream key to whoever answered. PyAV's FFmpeg checks with its
own GnuTLS, whose idea of the system's CAs is a file Debian does not have: the CA file
is always named here, ``stream.ca_file`` or the system's bundle.

FFmpeg says only "Input/output error" when the check fails; :func:`explain` repeats the
handshake with Python's ``ssl`` against the same CA file and host name to say why.
"""

from __future__ import annotations

import os
import socket
import ssl
from urllib.parse import urlsplit

from services.media.mux import MuxError

#: Where distributions keep the CA bundle, after what Python's ``ssl`` was built with.
BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
           "/etc/ssl/cert.pem")


def system_bundle() -> str | None:
    """The system's CA bundle (``SSL_CERT_FILE`` first), or None when there is none."""
    paths = ssl.get_default_verify_paths()
    for path in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile,
                 *BUNDLES):
        if path and os.path.isfile(path):
            return path
    return None


def ca_for(ca_file: str | None, ca_key: str) -> str:
    """The CA file to check a server against: ``ca_file`` (the setting ``ca_key``), else
    the system's bundle. Raises :class:`MuxError` saying what to set."""
    if ca_file:
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise MuxError(f"{ca_key} {ca_file}: not a readable PEM certificate "
                           f"({exc})") from exc
        return ca_file
    found = system_bundle()
    if found is None:
        raise MuxError(f"no CA certificates on this system to check the server against: "
                       f"set {ca_key} to the PEM file of its CA")
    return found


def handshake(url: str, ca_file: str, ca_key: str, *, custom: bool,
              timeout: float = 5.0) -> None:
    """A TLS handshake with the server of ``url``, its certificate checked against
    ``ca_file`` and the URL's host. Raises :class:`MuxError` (a sentence for the user)
    when it is not trusted, :class:`OSError` when the server cannot be reached. Blocks
    up to ``timeout`` per step; releases the GIL while it waits."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        context = ssl.create_default_context(cafile=ca_file)
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or str(exc)
    by = f"{ca_key} ({ca_file})" if custom else "a CA of the system"
    where = f"{parts.scheme}://{host}:{port}"
    if "mismatch" in why.lower():
        raise MuxError(f"cannot trust the server at {where}: its certificate is not for "
                       f"{host} ({why})")
    raise MuxError(f"cannot trust the server at {where}: its certificate is not signed by "
                   f"{by} ({why}); set {ca_key} to the PEM file of its CA or of its "
                   f"self-signed certificate")


def explain(url: str, ca_file: str, ca_key: str, *, custom: bool,
            timeout: float = 5.0) -> str | None:
    """Why the server of ``url`` is not trusted (:func:`handshake`'s sentence), or None
    when the check passes or the server cannot be reached (the trouble is then not its
    certificate)."""
    try:
        handshake(url, ca_file, ca_key, custom=custom, timeout=timeout)
    except MuxError as exc:
        return str(exc)
    except OSError:  # ssl.SSLError too: a handshake that failed for another reason
        return None
    return None

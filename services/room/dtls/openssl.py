"""DTLS on the system's OpenSSL 3 (``libssl.so.3``, ``libcrypto.so.3``), through ctypes.

Python's own ``ssl`` module is linked against these libraries, so they are mapped in the
appliance's process already; using them for the room's DTLS costs almost no memory,
where aiortc's pyOpenSSL and cryptography bring a second OpenSSL of their own (about
13 MB of the room's RSS, certificate generation included).

:class:`Certificate` is the ECDSA P-256 key and self-signed certificate a peer
connection shows; :class:`DtlsConnection` one DTLS endpoint over memory buffers: the
caller hands it each datagram received and sends the datagrams it returns. Neither is
thread-safe (the room uses them on its event loop). Every call clears OpenSSL's
per-thread error queue before it and drains it after a failure, so no stale error is
left for Python's ``ssl`` module, which shares it.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import threading
import weakref
from ctypes import POINTER, byref, c_char_p, c_int, c_long, c_size_t, c_uint, c_uint64, c_void_p
from typing import Any

#: the SRTP profiles offered, strongest first (their names as OpenSSL spells them)
CIPHERS = (b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
           b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
DIGESTS = {"sha-256": b"EVP_sha256", "sha-384": b"EVP_sha384", "sha-512": b"EVP_sha512"}
#: a handshake flight is cut into datagrams no larger than this (as browsers do)
MTU = 1200
VALID_DAYS = 30

_SSL_VERIFY_PEER_REQUIRED = 0x01 | 0x02  # VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT
_OP_NO_QUERY_MTU = 1 << 12
_OP_NO_TICKET = 1 << 14
_CTRL_SET_MTU = 17
_CTRL_GET_TIMEOUT = 73
_CTRL_HANDLE_TIMEOUT = 74
_CTRL_SET_MIN_PROTO_VERSION = 123
_DTLS1_2_VERSION = 0xFEFD
_BIO_CTRL_PENDING = 10
_MBSTRING_ASC = 0x1001
_ERROR_WANT_READ = 2
_ERROR_ZERO_RETURN = 6
_RECORD_HEADER = 13  # DTLS record: type, version (2), epoch (2), sequence (6), length (2)

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(c_int, c_int, c_void_p)


class DtlsError(Exception):
    """A DTLS or certificate operation failed; the message carries OpenSSL's reasons."""


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]


class _SrtpProfile(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("id", ctypes.c_ulong)]


_P = c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    # libcrypto
    "ERR_get_error": (ctypes.c_ulong, []),
    "ERR_clear_error": (None, []),
    "ERR_error_string_n": (None, [ctypes.c_ulong, c_char_p, c_size_t]),
    "EVP_PKEY_CTX_new_from_name": (_P, [_P, c_char_p, _P]),
    "EVP_PKEY_CTX_free": (None, [_P]),
    "EVP_PKEY_keygen_init": (c_int, [_P]),
    "EVP_PKEY_CTX_set_group_name": (c_int, [_P, c_char_p]),
    "EVP_PKEY_generate": (c_int, [_P, POINTER(_P)]),
    "EVP_PKEY_free": (None, [_P]),
    "EVP_sha256": (_P, []),
    "EVP_sha384": (_P, []),
    "EVP_sha512": (_P, []),
    "X509_new": (_P, []),
    "X509_free": (None, [_P]),
    "X509_set_version": (c_int, [_P, c_long]),
    "X509_get_serialNumber": (_P, [_P]),
    "ASN1_INTEGER_set_uint64": (c_int, [_P, c_uint64]),
    "X509_getm_notBefore": (_P, [_P]),
    "X509_getm_notAfter": (_P, [_P]),
    "X509_gmtime_adj": (_P, [_P, c_long]),
    "X509_get_subject_name": (_P, [_P]),
    "X509_NAME_add_entry_by_txt": (c_int, [_P, c_char_p, c_int, c_char_p, c_int, c_int, c_int]),
    "X509_set_issuer_name": (c_int, [_P, _P]),
    "X509_set_pubkey": (c_int, [_P, _P]),
    "X509_sign": (c_int, [_P, _P, _P]),
    "X509_digest": (c_int, [_P, _P, c_char_p, POINTER(c_uint)]),
    "EVP_CIPHER_CTX_new": (_P, []),
    "EVP_CIPHER_CTX_free": (None, [_P]),
    "EVP_CipherInit_ex": (c_int, [_P, _P, _P, c_char_p, c_char_p, c_int]),
    "EVP_CipherUpdate": (c_int, [_P, _P, POINTER(c_int), c_char_p, c_int]),
    "EVP_CipherFinal_ex": (c_int, [_P, _P, POINTER(c_int)]),
    "EVP_CIPHER_CTX_ctrl": (c_int, [_P, c_int, c_int, _P]),
    "EVP_aes_128_ctr": (_P, []),
    "EVP_aes_256_ctr": (_P, []),
    "EVP_aes_128_gcm": (_P, []),
    "EVP_aes_256_gcm": (_P, []),
    "BIO_s_mem": (_P, []),
    "BIO_new": (_P, [_P]),
    "BIO_read": (c_int, [_P, c_char_p, c_int]),
    "BIO_write": (c_int, [_P, c_char_p, c_int]),
    "BIO_ctrl": (c_long, [_P, c_int, c_long, _P]),
    # libssl
    "DTLS_method": (_P, []),
    "SSL_CTX_new": (_P, [_P]),
    "SSL_CTX_free": (None, [_P]),
    "SSL_CTX_set_options": (c_uint64, [_P, c_uint64]),
    "SSL_CTX_ctrl": (c_long, [_P, c_int, c_long, _P]),
    "SSL_CTX_set_verify": (None, [_P, c_int, _VERIFY_CALLBACK]),
    "SSL_CTX_use_certificate": (c_int, [_P, _P]),
    "SSL_CTX_use_PrivateKey": (c_int, [_P, _P]),
    "SSL_CTX_set_cipher_list": (c_int, [_P, c_char_p]),
    "SSL_CTX_set_tlsext_use_srtp": (c_int, [_P, c_char_p]),
    "SSL_new": (_P, [_P]),
    "SSL_free": (None, [_P]),
    "SSL_set_bio": (None, [_P, _P, _P]),
    "SSL_ctrl": (c_long, [_P, c_int, c_long, _P]),
    "SSL_set_connect_state": (None, [_P]),
    "SSL_set_accept_state": (None, [_P]),
    "SSL_do_handshake": (c_int, [_P]),
    "SSL_get_error": (c_int, [_P, c_int]),
    "SSL_read": (c_int, [_P, c_char_p, c_int]),
    "SSL_write": (c_int, [_P, c_char_p, c_int]),
    "SSL_shutdown": (c_int, [_P]),
    "SSL_get1_peer_certificate": (_P, [_P]),
    "SSL_get_selected_srtp_profile": (POINTER(_SrtpProfile), [_P]),
    "SSL_export_keying_material": (c_int, [_P, c_char_p, c_size_t, c_char_p, c_size_t,
                                           c_char_p, c_size_t, c_int]),
}


class Libs:
    """OpenSSL's functions (DTLS here, AES for :mod:`.srtp`), declared once."""

    def __init__(self) -> None:
        try:
            crypto = ctypes.CDLL("libcrypto.so.3")
            ssl = ctypes.CDLL("libssl.so.3")
        except OSError as exc:
            raise DtlsError(f"OpenSSL 3 is needed for the room's DTLS and SRTP "
                            f"(Debian package libssl3): {exc}") from exc
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(ssl if name.startswith(("SSL", "DTLS")) else crypto, name)
            function.restype, function.argtypes = restype, argtypes
            setattr(self, name, function)

    def __getattr__(self, name: str) -> Any:  # for mypy: the functions set above
        raise AttributeError(name)


_libs: Libs | None = None
_load_lock = threading.Lock()


def libs() -> Libs:
    """Loaded on first use (any thread)."""
    global _libs
    with _load_lock:
        if _libs is None:
            _libs = Libs()
    return _libs


def _reasons(lib: Libs) -> str:
    """OpenSSL's queued errors, drained, as one line."""
    reasons, buf = [], ctypes.create_string_buffer(256)
    while code := lib.ERR_get_error():
        lib.ERR_error_string_n(code, buf, len(buf))
        reasons.append(buf.value.decode(errors="replace"))
    return "; ".join(reasons) or "no reason given"


def _check(lib: Libs, ok: Any, what: str) -> None:
    if not ok:
        raise DtlsError(f"{what} failed: {_reasons(lib)}")


@_VERIFY_CALLBACK
def _accept_any(_preverify: int, _store: int) -> int:
    """Any certificate passes the handshake: the far end's is self-signed, and it is
    checked against the fingerprint its description gave once the handshake is done."""
    return 1


class Certificate:
    """An ECDSA P-256 key and a self-signed certificate for it, valid for 30 days."""

    def __init__(self) -> None:
        lib = libs()
        lib.ERR_clear_error()
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"EC", None)
        _check(lib, ctx, "EC key context")
        try:
            key = c_void_p()
            _check(lib, lib.EVP_PKEY_keygen_init(ctx) == 1
                   and lib.EVP_PKEY_CTX_set_group_name(ctx, b"P-256") == 1
                   and lib.EVP_PKEY_generate(ctx, byref(key)) == 1, "P-256 key generation")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        self.key = key.value
        self._free_key = weakref.finalize(self, lib.EVP_PKEY_free, self.key)
        x509 = lib.X509_new()
        _check(lib, x509, "X509_new")
        self.x509 = x509
        self._free_x509 = weakref.finalize(self, lib.X509_free, x509)
        serial = int.from_bytes(os.urandom(8), "big") >> 1  # positive, 63 bits
        common_name = os.urandom(16).hex().encode()
        name = lib.X509_get_subject_name(x509)
        _check(lib, lib.X509_set_version(x509, 2) == 1
               and lib.ASN1_INTEGER_set_uint64(lib.X509_get_serialNumber(x509), serial) == 1
               and lib.X509_gmtime_adj(lib.X509_getm_notBefore(x509), -86400)
               and lib.X509_gmtime_adj(lib.X509_getm_notAfter(x509), VALID_DAYS * 86400)
               and lib.X509_NAME_add_entry_by_txt(name, b"CN", _MBSTRING_ASC, common_name,
                                                  -1, -1, 0) == 1
               and lib.X509_set_issuer_name(x509, name) == 1
               and lib.X509_set_pubkey(x509, self.key) == 1
               and lib.X509_sign(x509, self.key, lib.EVP_sha256()) > 0,
               "self-signed certificate")
        now = datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0)
        self.expires = now + datetime.timedelta(days=VALID_DAYS)

    def fingerprint(self, algorithm: str) -> str:
        return fingerprint_of(self.x509, algorithm)


def fingerprint_of(x509: int | None, algorithm: str) -> str:
    """The certificate's digest as SDP writes it (``AB:CD:...``); ``algorithm`` is one of
    :data:`DIGESTS` (KeyError otherwise)."""
    lib = libs()
    digest = getattr(lib, DIGESTS[algorithm].decode())()
    out, size = ctypes.create_string_buffer(64), c_uint(0)
    lib.ERR_clear_error()
    _check(lib, lib.X509_digest(x509, digest, out, byref(size)) == 1, "certificate digest")
    return out.raw[:size.value].hex(":").upper()


def split_records(data: bytes, mtu: int = MTU) -> list[bytes]:
    """Whole DTLS records packed into datagrams of at most ``mtu`` bytes (a record
    larger than that goes alone); a tail too short to be a record goes as it is."""
    datagrams: list[bytes] = []
    current = b""
    pos = 0
    while pos < len(data):
        end = len(data)
        if end - pos >= _RECORD_HEADER:
            end = min(end, pos + _RECORD_HEADER + int.from_bytes(data[pos + 11:pos + 13], "big"))
        if current and len(current) + end - pos > mtu:
            datagrams.append(current)
            current = b""
        current += data[pos:end]
        pos = end
    if current:
        datagrams.append(current)
    return datagrams


class DtlsConnection:
    """One DTLS endpoint (client or server) offering ``srtp_profiles`` (OpenSSL's names),
    with ``certificate`` as its identity. The far end's certificate is accepted by the
    handshake and must be checked with :meth:`peer_fingerprint` after it."""

    def __init__(self, certificate: Certificate, *, server: bool,
                 srtp_profiles: list[str]) -> None:
        lib = self._lib = libs()
        lib.ERR_clear_error()
        ctx = lib.SSL_CTX_new(lib.DTLS_method())
        _check(lib, ctx, "SSL_CTX_new")
        try:
            lib.SSL_CTX_set_options(ctx, _OP_NO_TICKET | _OP_NO_QUERY_MTU)
            lib.SSL_CTX_set_verify(ctx, _SSL_VERIFY_PEER_REQUIRED, _accept_any)
            _check(lib, lib.SSL_CTX_ctrl(ctx, _CTRL_SET_MIN_PROTO_VERSION, _DTLS1_2_VERSION,
                                         None) == 1
                   and lib.SSL_CTX_use_certificate(ctx, certificate.x509) == 1
                   and lib.SSL_CTX_use_PrivateKey(ctx, certificate.key) == 1
                   and lib.SSL_CTX_set_cipher_list(ctx, CIPHERS) == 1
                   # 0 is success here
                   and lib.SSL_CTX_set_tlsext_use_srtp(
                       ctx, ":".join(srtp_profiles).encode()) == 0,
                   "DTLS context")
            ssl = lib.SSL_new(ctx)
            _check(lib, ssl, "SSL_new")
        finally:
            lib.SSL_CTX_free(ctx)  # the connection holds its own reference
        self._ssl = ssl
        self._certificate = certificate  # its key and certificate outlive the connection
        self._free = weakref.finalize(self, lib.SSL_free, ssl)
        self._rbio, self._wbio = lib.BIO_new(lib.BIO_s_mem()), lib.BIO_new(lib.BIO_s_mem())
        _check(lib, self._rbio and self._wbio, "BIO_new")
        lib.SSL_set_bio(ssl, self._rbio, self._wbio)  # the connection owns both now
        lib.SSL_ctrl(ssl, _CTRL_SET_MTU, MTU, None)
        (lib.SSL_set_accept_state if server else lib.SSL_set_connect_state)(ssl)
        self._buf = ctypes.create_string_buffer(16384)  # DTLS's largest record
        #: OpenSSL's reasons for the last read that failed (an alert, a bad record)
        self.error = ""

    def close(self) -> None:
        self._free()

    def handshake(self) -> bool:
        """Take the handshake as far as it goes with what was fed: True once it is done.
        Raises :class:`DtlsError` when it failed."""
        lib = self._lib
        lib.ERR_clear_error()
        result = lib.SSL_do_handshake(self._ssl)
        if result == 1:
            return True
        if lib.SSL_get_error(self._ssl, result) == _ERROR_WANT_READ:
            return False
        raise DtlsError(f"DTLS handshake failed: {_reasons(lib)}")

    def feed(self, datagram: bytes) -> None:
        """A datagram from the far end (processed by the next call)."""
        self._lib.BIO_write(self._rbio, datagram, len(datagram))

    def read(self) -> tuple[list[bytes], bool]:
        """The application data the fed datagrams held, and whether the far end closed
        the connection. A record that fails (a bad MAC) is dropped, as DTLS does."""
        lib, ssl, buf = self._lib, self._ssl, self._buf
        records: list[bytes] = []
        while True:
            lib.ERR_clear_error()
            size = lib.SSL_read(ssl, buf, len(buf))
            if size > 0:
                records.append(buf.raw[:size])
                continue
            error = lib.SSL_get_error(ssl, size)
            if error == _ERROR_ZERO_RETURN:
                return records, True
            if error != _ERROR_WANT_READ:
                self.error = _reasons(lib)
            return records, False

    def write(self, data: bytes) -> None:
        lib = self._lib
        lib.ERR_clear_error()
        if lib.SSL_write(self._ssl, data, len(data)) <= 0:
            raise DtlsError(f"DTLS write failed: {_reasons(lib)}")

    def datagrams(self) -> list[bytes]:
        """What OpenSSL wrote for the far end since the last call, as datagrams."""
        lib = self._lib
        pending = lib.BIO_ctrl(self._wbio, _BIO_CTRL_PENDING, 0, None)
        if pending <= 0:
            return []
        out = ctypes.create_string_buffer(pending)
        size = lib.BIO_read(self._wbio, out, pending)
        return split_records(out.raw[:max(size, 0)])

    def timeout(self) -> float | None:
        """Seconds until OpenSSL's handshake retransmission timer fires (None: not
        running)."""
        tv = _Timeval()
        if self._lib.SSL_ctrl(self._ssl, _CTRL_GET_TIMEOUT, 0, ctypes.cast(byref(tv), c_void_p)):
            return float(tv.tv_sec + tv.tv_usec / 1e6)
        return None

    def handle_timeout(self) -> None:
        """The timer fired: OpenSSL queues its last flight again (see :meth:`datagrams`)."""
        self._lib.ERR_clear_error()
        if self._lib.SSL_ctrl(self._ssl, _CTRL_HANDLE_TIMEOUT, 0, None) < 0:
            raise DtlsError(f"DTLS retransmission failed: {_reasons(self._lib)}")

    def shutdown(self) -> None:
        """Queue a close_notify for the far end."""
        self._lib.ERR_clear_error()
        if self._lib.SSL_shutdown(self._ssl) < 0:
            _reasons(self._lib)

    def peer_fingerprint(self, algorithm: str) -> str | None:
        """The far end's certificate digest (``algorithm`` from :data:`DIGESTS`), None
        without one."""
        lib = self._lib
        x509 = lib.SSL_get1_peer_certificate(self._ssl)
        if not x509:
            return None
        try:
            return fingerprint_of(x509, algorithm)
        finally:
            lib.X509_free(x509)

    def srtp_profile(self) -> str | None:
        """The SRTP profile the handshake agreed on (OpenSSL's name), or None."""
        profile = self._lib.SSL_get_selected_srtp_profile(self._ssl)
        return profile.contents.name.decode() if profile else None

    def keying_material(self, label: bytes, length: int) -> bytes:
        """RFC 5705 exported keying material (no context)."""
        lib, out = self._lib, ctypes.create_string_buffer(length)
        lib.ERR_clear_error()
        _check(lib, lib.SSL_export_keying_material(self._ssl, out, length, label, len(label),
                                                   None, 0, 0) == 1, "keying material export")
        return out.raw

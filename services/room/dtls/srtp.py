"""SRTP and SRTCP on the system's libsrtp2 (Debian package ``libsrtp2-1``), through ctypes.

pylibsrtp, which aiortc uses, carries its own libsrtp and a static OpenSSL libcrypto in its
extension module; this module uses the libsrtp2 the system has instead (Debian builds it on
NSS), which takes less memory. One :class:`SrtpSession` per direction, keyed from the
DTLS-SRTP handshake, protects or unprotects each RTP and RTCP packet with one call into
libsrtp.

The library is loaded, and ``srtp_init`` called, on first use, not at import. The structs
mirror ``include/srtp.h`` of libsrtp 2.5.0, the version in Debian bookworm.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

#: OpenSSL's name of each DTLS-SRTP profile -> (master key length, master salt length),
#: strongest first
PROFILES: dict[str, tuple[int, int]] = {
    "SRTP_AEAD_AES_256_GCM": (32, 12),
    "SRTP_AEAD_AES_128_GCM": (16, 12),
    "SRTP_AES128_CM_SHA1_80": (16, 14),
}
#: libsrtp's srtp_profile_t value of each profile
_PROFILE_IDS = {"SRTP_AEAD_AES_256_GCM": 8, "SRTP_AEAD_AES_128_GCM": 7,
                "SRTP_AES128_CM_SHA1_80": 1}

#: SRTP_MAX_TRAILER_LEN (SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN): what srtp_protect may append
SRTP_MAX_TRAILER_LEN = 16 + 128
#: srtp_protect_rtcp appends the 4-byte E flag and SRTCP index too
SRTCP_MAX_TRAILER_LEN = 4 + SRTP_MAX_TRAILER_LEN
#: the largest plain packet a session is sure to take; its buffer holds this much plus
#: SRTCP_MAX_TRAILER_LEN, and a packet that would not fit in it is refused
MAX_PACKET = 1500
_BUFFER_SIZE = MAX_PACKET + SRTCP_MAX_TRAILER_LEN

# srtp_err_status_t, in order from 0
_STATUS_NAMES = (
    "ok fail bad_param alloc_fail dealloc_fail init_fail terminus auth_fail cipher_fail "
    "replay_fail replay_old algo_fail no_such_op no_ctx cant_check key_expired socket_err "
    "signal_err nonce_bad read_fail write_fail parse_err encode_err semaphore_err pfkey_err "
    "bad_mki pkt_idx_old pkt_idx_adv").split()
# srtp_ssrc_type_t
_SSRC_ANY_INBOUND = 2
_SSRC_ANY_OUTBOUND = 3


class SrtpError(Exception):
    """A libsrtp call failed; the message names the operation and libsrtp's status."""


def _error(operation: str, status: int) -> SrtpError:
    name = _STATUS_NAMES[status] if 0 <= status < len(_STATUS_NAMES) else "unknown"
    return SrtpError(f"{operation} failed: {name} ({status})")


class _Ssrc(ctypes.Structure):  # srtp_ssrc_t
    _fields_ = [("type", ctypes.c_int), ("value", ctypes.c_uint)]


class _CryptoPolicy(ctypes.Structure):  # srtp_crypto_policy_t
    _fields_ = [
        ("cipher_type", ctypes.c_uint32),  # srtp_cipher_type_id_t
        ("cipher_key_len", ctypes.c_int),
        ("auth_type", ctypes.c_uint32),  # srtp_auth_type_id_t
        ("auth_key_len", ctypes.c_int),
        ("auth_tag_len", ctypes.c_int),
        ("sec_serv", ctypes.c_int),  # srtp_sec_serv_t
    ]


class _Policy(ctypes.Structure):  # srtp_policy_t
    _fields_ = [
        ("ssrc", _Ssrc),
        ("rtp", _CryptoPolicy),
        ("rtcp", _CryptoPolicy),
        ("key", ctypes.c_void_p),  # unsigned char *: master key || master salt
        ("keys", ctypes.c_void_p),  # srtp_master_key_t **
        ("num_master_keys", ctypes.c_ulong),
        ("deprecated_ekt", ctypes.c_void_p),
        ("window_size", ctypes.c_ulong),
        ("allow_repeat_tx", ctypes.c_int),
        ("enc_xtn_hdr", ctypes.c_void_p),  # int *
        ("enc_xtn_hdr_count", ctypes.c_int),
        ("next", ctypes.c_void_p),  # struct srtp_policy_t *
    ]


_load_lock = threading.Lock()
_loaded: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    """libsrtp2, its functions declared and ``srtp_init`` called (once)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _load_lock:
        if _loaded is None:
            try:
                lib = ctypes.CDLL("libsrtp2.so.1")
            except OSError as exc:
                raise OSError(f"libsrtp2 is missing (install the Debian package libsrtp2-1): "
                              f"{exc}") from exc
            int_p = ctypes.POINTER(ctypes.c_int)
            signatures: dict[str, list[Any]] = {
                "srtp_init": [],
                "srtp_create": [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_Policy)],
                "srtp_dealloc": [ctypes.c_void_p],
                "srtp_crypto_policy_set_from_profile_for_rtp":
                    [ctypes.POINTER(_CryptoPolicy), ctypes.c_int],
                "srtp_crypto_policy_set_from_profile_for_rtcp":
                    [ctypes.POINTER(_CryptoPolicy), ctypes.c_int],
            }
            for name in ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp"):
                signatures[f"srtp_{name}"] = [ctypes.c_void_p, ctypes.c_void_p, int_p]
            for name, argtypes in signatures.items():
                func = getattr(lib, name)
                func.argtypes = argtypes
                func.restype = ctypes.c_int  # srtp_err_status_t
            status = lib.srtp_init()
            if status:
                raise _error("srtp_init", status)
            _loaded = lib
    return _loaded


def _create(lib: ctypes.CDLL, profile: str, key: bytes, ssrc_type: int, window_size: int,
            allow_repeat_tx: bool) -> ctypes.c_void_p:
    """A new libsrtp session (srtp_t) for ``profile`` keyed with ``key``."""
    policy, profile_id = _Policy(), _PROFILE_IDS[profile]
    for setter, crypto in ((lib.srtp_crypto_policy_set_from_profile_for_rtp, policy.rtp),
                           (lib.srtp_crypto_policy_set_from_profile_for_rtcp, policy.rtcp)):
        status = setter(ctypes.byref(crypto), profile_id)
        if status:
            raise _error(f"setting the {profile} policy", status)
    policy.ssrc.type = ssrc_type
    key_buffer = ctypes.create_string_buffer(key, len(key))
    policy.key = ctypes.cast(key_buffer, ctypes.c_void_p)
    policy.window_size = window_size
    policy.allow_repeat_tx = int(allow_repeat_tx)
    ctx = ctypes.c_void_p()
    try:
        status = lib.srtp_create(ctypes.byref(ctx), ctypes.byref(policy))
    finally:
        ctypes.memset(key_buffer, 0, len(key))  # libsrtp keeps derived keys, not this copy
    if status:
        raise _error("create", status)
    return ctx


def supported_profiles() -> list[str]:
    """Those of :data:`PROFILES` this libsrtp2 can use, strongest first.

    The AES-GCM profiles need libsrtp2 built with a crypto library that has AES-GCM (Debian
    builds it on NSS, which does); each profile is tried, once, by creating a session."""
    return list(_supported_profiles())


@functools.cache
def _supported_profiles() -> tuple[str, ...]:
    lib = _lib()
    supported = []
    for profile, (key_len, salt_len) in PROFILES.items():
        try:
            ctx = _create(lib, profile, bytes(key_len + salt_len), _SSRC_ANY_OUTBOUND, 1024,
                          True)
        except SrtpError:
            continue
        lib.srtp_dealloc(ctx)
        supported.append(profile)
    return tuple(supported)


class SrtpSession:
    """One libsrtp session: protects (``outbound``) or unprotects the packets of any SSRC.

    ``key`` is the master key followed by the master salt, of the lengths
    :data:`PROFILES` gives for ``profile``. Every call writes into one buffer the session
    keeps, so a session is not thread-safe: a caller that shares one between threads holds
    a lock around each call. :meth:`close` frees libsrtp's state; a session that is
    dropped unclosed frees it when it is collected."""

    def __init__(self, profile: str, key: bytes, *, outbound: bool, window_size: int = 1024,
                 allow_repeat_tx: bool = True) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown SRTP profile {profile!r}: expected one of "
                             f"{', '.join(PROFILES)}")
        key_len, salt_len = PROFILES[profile]
        if len(key) != key_len + salt_len:
            raise ValueError(f"{profile} needs a {key_len}-byte master key and a {salt_len}-byte"
                             f" master salt ({key_len + salt_len} bytes), not {len(key)} bytes")
        lib = _lib()
        ssrc_type = _SSRC_ANY_OUTBOUND if outbound else _SSRC_ANY_INBOUND
        self.profile = profile
        self._ctx: ctypes.c_void_p | None = _create(lib, profile, key, ssrc_type, window_size,
                                                    allow_repeat_tx)
        self._finalizer = weakref.finalize(self, lib.srtp_dealloc, self._ctx)
        self._buffer = ctypes.create_string_buffer(_BUFFER_SIZE)
        self._view = memoryview(self._buffer).cast("B")
        self._length = ctypes.c_int()
        self._length_p = ctypes.pointer(self._length)
        self._protect = lib.srtp_protect
        self._protect_rtcp = lib.srtp_protect_rtcp
        self._unprotect = lib.srtp_unprotect
        self._unprotect_rtcp = lib.srtp_unprotect_rtcp

    def protect(self, packet: bytes) -> bytes:
        """The SRTP packet of the RTP ``packet``."""
        return self._call(self._protect, "protect", packet, SRTP_MAX_TRAILER_LEN)

    def protect_rtcp(self, packet: bytes) -> bytes:
        """The SRTCP packet of the RTCP ``packet`` (compound or not)."""
        return self._call(self._protect_rtcp, "protect_rtcp", packet, SRTCP_MAX_TRAILER_LEN)

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet in the SRTP ``packet``, once authenticated and checked for replay."""
        return self._call(self._unprotect, "unprotect", packet, 0)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """The RTCP packet in the SRTCP ``packet``, once authenticated and checked for replay."""
        return self._call(self._unprotect_rtcp, "unprotect_rtcp", packet, 0)

    def close(self) -> None:
        """Free libsrtp's state (srtp_dealloc); later calls raise :class:`SrtpError`."""
        self._ctx = None
        self._finalizer()

    def _call(self, func: Callable[..., int], operation: str, packet: bytes,
              trailer: int) -> bytes:
        ctx = self._ctx
        if ctx is None:
            raise SrtpError(f"{operation} failed: the session is closed")
        length = len(packet)
        if length + trailer > _BUFFER_SIZE:
            raise SrtpError(f"{operation} failed: {length}-byte packet, longer than "
                            f"{_BUFFER_SIZE - trailer} bytes")
        view = self._view
        view[:length] = packet
        self._length.value = length
        status = func(ctx, self._buffer, self._length_p)
        if status:
            raise _error(operation, status)
        return view[:self._length.value].tobytes()

"""SRTP and SRTCP (RFC 3711, and RFC 7714 for AES-GCM) on the system's OpenSSL.

The appliance's process has ``libcrypto.so.3`` mapped already (Python's ``ssl`` and
``hashlib`` use it), so protecting media with it costs nothing in memory, where
pylibsrtp brings its own libsrtp and OpenSSL (5.3 MB of the room's memory) and the
system's libsrtp2 brings NSS (3.7 MB). One :class:`SrtpSession` per direction is keyed
from the DTLS-SRTP handshake; it protects (or authenticates, checks for replay and
unprotects) every RTP and RTCP packet.

What libsrtp does, done the same way, byte for byte (``tests/room/test_srtp.py`` checks
every profile both ways against pylibsrtp's libsrtp):

- **Session keys** come from the master key and salt through the AES-CM key derivation
  (RFC 3711, 4.3; key derivation rate 0): an encryption key, an authentication key
  (AES-CM only) and a salt, for RTP (labels 0-2) and for RTCP (labels 3-5).
- **The packet index** of an RTP packet is its rollover counter and sequence number,
  the counter estimated from the highest index seen for its SSRC (RFC 3711, 3.3.1),
  for packets sent as for packets received. SRTCP packets carry their index.
- **Replay**: an index already received, or more than the window (1024 RTP packets,
  128 RTCP) behind the highest, is refused; the window moves only once a packet has
  been authenticated. The same RTP index sent twice (a retransmission) is allowed when
  ``allow_repeat_tx`` is set, as aiortc sets it.
- **Errors** name the operation and libsrtp's status for the same failure
  (``unprotect failed: auth_fail (7)``).

Every packet costs two to five calls into libcrypto, through one cipher context per
session and direction made at keying. A session is not thread-safe: the caller holds a
lock (:mod:`services.room.srtp_lock`).
"""

from __future__ import annotations

import ctypes
import hmac
import struct
import weakref
from ctypes import c_int

from services.room.dtls.openssl import Libs, libs
from services.room.dtls.replay import Window

#: OpenSSL's name of each DTLS-SRTP profile -> (master key length, master salt length),
#: strongest first
PROFILES: dict[str, tuple[int, int]] = {
    "SRTP_AEAD_AES_256_GCM": (32, 12),
    "SRTP_AEAD_AES_128_GCM": (16, 12),
    "SRTP_AES128_CM_SHA1_80": (16, 14),
}
#: the largest packet protected or unprotected (an SRTP packet on an Ethernet link)
MAX_PACKET = 1500
_CM_TAG, _GCM_TAG, _AUTH_KEY = 10, 16, 20
RTP_WINDOW, RTCP_WINDOW = 1024, 128
_EVP_CTRL_GCM_GET_TAG, _EVP_CTRL_GCM_SET_TAG = 0x10, 0x11
_STATUS = {"bad_param": 2, "auth_fail": 7, "cipher_fail": 8, "replay_fail": 9,
           "replay_old": 10, "parse_err": 21}
_RTP_HEADER = struct.Struct("!BBHII")
_E_INDEX = struct.Struct("!I")


class SrtpError(Exception):
    """A packet could not be protected or unprotected (it is dropped)."""


def _fail(operation: str, status: str, detail: str = "") -> SrtpError:
    return SrtpError(f"{operation} failed: {status} ({_STATUS[status]})"
                     + (f": {detail}" if detail else ""))


def supported_profiles() -> list[str]:
    """The profiles offered in the DTLS handshake, strongest first (OpenSSL 3 has them
    all)."""
    return list(PROFILES)


class _Cipher:
    """One AES context (CTR or GCM) with its key set; a new IV for each packet."""

    def __init__(self, lib: Libs, cipher: int, key: bytes, encrypt: bool) -> None:
        self._lib, self._encrypt = lib, int(encrypt)
        ctx = lib.EVP_CIPHER_CTX_new()
        if not ctx or lib.EVP_CipherInit_ex(ctx, cipher, None, key, None, self._encrypt) != 1:
            lib.EVP_CIPHER_CTX_free(ctx)
            raise SrtpError("cipher setup failed")
        self._ctx = ctx
        self._free = weakref.finalize(self, lib.EVP_CIPHER_CTX_free, ctx)
        self._out = ctypes.create_string_buffer(MAX_PACKET + 64)
        self._out_len = c_int()
        self._tag = ctypes.create_string_buffer(_GCM_TAG)

    def ctr(self, iv: bytes, data: bytes) -> bytes:
        lib, out = self._lib, self._out
        if (lib.EVP_CipherInit_ex(self._ctx, None, None, None, iv, 1) != 1
                or lib.EVP_CipherUpdate(self._ctx, out, ctypes.byref(self._out_len), data,
                                        len(data)) != 1):
            raise SrtpError("AES-CM failed")
        return out.raw[:len(data)]

    def gcm(self, iv: bytes, aad: bytes, data: bytes, tag: bytes = b"") -> bytes | None:
        """Encrypt ``data`` (ciphertext and tag), or decrypt it against ``tag`` (None when
        it does not authenticate)."""
        lib, ctx, out, out_len = self._lib, self._ctx, self._out, ctypes.byref(self._out_len)
        if (lib.EVP_CipherInit_ex(ctx, None, None, None, iv, self._encrypt) != 1
                or lib.EVP_CipherUpdate(ctx, None, out_len, aad, len(aad)) != 1
                or lib.EVP_CipherUpdate(ctx, out, out_len, data, len(data)) != 1):
            raise SrtpError("AES-GCM failed")
        result = out.raw[:len(data)]
        if self._encrypt:
            if (lib.EVP_CipherFinal_ex(ctx, self._tag, out_len) != 1
                    or lib.EVP_CIPHER_CTX_ctrl(ctx, _EVP_CTRL_GCM_GET_TAG, _GCM_TAG,
                                               self._tag) != 1):
                raise SrtpError("AES-GCM failed")
            return result + self._tag.raw
        lib.EVP_CIPHER_CTX_ctrl(ctx, _EVP_CTRL_GCM_SET_TAG, _GCM_TAG, tag)
        return result if lib.EVP_CipherFinal_ex(ctx, self._tag, out_len) == 1 else None


def _derive(lib: Libs, master_key: bytes, master_salt: bytes, label: int,
            length: int) -> bytes:
    """RFC 3711's AES-CM key derivation (rate 0): the keystream at (salt XOR label)."""
    x = bytearray(master_salt.ljust(14, b"\0"))
    x[7] ^= label
    cipher = lib.EVP_aes_128_ctr() if len(master_key) == 16 else lib.EVP_aes_256_ctr()
    return _Cipher(lib, cipher, master_key, True).ctr(bytes(x) + b"\0\0", bytes(length))


class _Keys:
    """The session keys of RTP or of RTCP, and the cipher they are used with."""

    def __init__(self, lib: Libs, profile: str, master: bytes, labels: int,
                 encrypt: bool) -> None:
        key_length, salt_length = PROFILES[profile]
        master_key, master_salt = master[:key_length], master[key_length:]
        self.gcm = salt_length == 12
        key = _derive(lib, master_key, master_salt, labels, key_length)
        self.auth = b"" if self.gcm else _derive(lib, master_key, master_salt, labels + 1,
                                                 _AUTH_KEY)
        self.salt = int.from_bytes(
            _derive(lib, master_key, master_salt, labels + 2, salt_length), "big")
        if self.gcm:
            cipher = lib.EVP_aes_128_gcm() if key_length == 16 else lib.EVP_aes_256_gcm()
        else:
            cipher = lib.EVP_aes_128_ctr()
        self.cipher = _Cipher(lib, cipher, key, encrypt or not self.gcm)

    def cm_iv(self, ssrc: int, index: int) -> bytes:
        """AES-CM's counter block (RFC 3711, 4.1.1)."""
        return ((self.salt << 16) ^ (ssrc << 64) ^ (index << 16)).to_bytes(16, "big")

    def gcm_iv(self, ssrc: int, index: int) -> bytes:
        """AES-GCM's IV (RFC 7714, 8.1 and 9.1: the index is the RTP packet's 48-bit one
        or the 31-bit SRTCP index)."""
        return ((ssrc << 48 | index) ^ self.salt).to_bytes(12, "big")

    def tag(self, data: bytes) -> bytes:
        return hmac.digest(self.auth, data, "sha1")[:_CM_TAG]


class SrtpSession:
    """The SRTP context of one direction of a connection, for packets of any SSRC.

    ``key`` is the master key followed by the master salt, of the lengths
    :data:`PROFILES` gives for ``profile``; ``outbound`` says whether it protects (the
    packets the box sends) or unprotects (those it receives)."""

    def __init__(self, profile: str, key: bytes, *, outbound: bool,
                 window_size: int = RTP_WINDOW, allow_repeat_tx: bool = True) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown SRTP profile {profile!r}: expected one of "
                             f"{', '.join(PROFILES)}")
        key_len, salt_len = PROFILES[profile]
        if len(key) != key_len + salt_len:
            raise ValueError(f"{profile} needs a {key_len}-byte master key and a {salt_len}-byte"
                             f" master salt ({key_len + salt_len} bytes), not {len(key)} bytes")
        if not 64 <= window_size < 0x8000:
            raise _fail("create", "bad_param", f"replay window of {window_size} "
                                               f"(64 to 32767 packets)")
        lib = libs()
        self.profile = profile
        self._window_size, self._repeat = window_size, allow_repeat_tx
        self._rtp = _Keys(lib, profile, key, 0, outbound)
        self._rtcp = _Keys(lib, profile, key, 3, outbound)
        self._gcm = self._rtp.gcm
        self._tag = _GCM_TAG if self._gcm else _CM_TAG
        self._streams: dict[int, Window] = {}  # RTP, by SSRC
        self._rtcp_windows: dict[int, Window] = {}  # SRTCP received, by SSRC
        self._rtcp_sent: dict[int, int] = {}  # the last SRTCP index sent, by SSRC
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, self._rtp.cipher, self._rtcp.cipher)

    def close(self) -> None:
        """Free the cipher contexts; later calls raise :class:`SrtpError`."""
        self._closed = True
        self._finalizer()

    def _rtp_header(self, operation: str, packet: bytes, end: int,
                    limit: int) -> tuple[int, int, int]:
        """(header length, sequence number, SSRC) of the RTP ``packet[:end]``; ``packet``
        is refused when longer than ``limit``."""
        if self._closed:
            raise SrtpError(f"{operation} failed: the session is closed")
        if end < 12:
            raise _fail(operation, "bad_param", f"{len(packet)}-byte packet, too short")
        if len(packet) > limit:
            raise _fail(operation, "bad_param", f"{len(packet)}-byte packet, longer than "
                                                f"{MAX_PACKET} bytes")
        first, _, seq, _, ssrc = _RTP_HEADER.unpack_from(packet)
        length = 12 + 4 * (first & 0x0F)
        if first & 0x10 and length + 4 <= end:
            length += 4 + 4 * int.from_bytes(packet[length + 2:length + 4], "big")
        elif first & 0x10:
            length = end + 1
        if length > end:
            raise _fail(operation, "parse_err", "its header is longer than the packet")
        return length, seq, ssrc

    def protect(self, packet: bytes) -> bytes:
        """The SRTP packet of the RTP ``packet``."""
        header_length, seq, ssrc = self._rtp_header("protect", packet, len(packet),
                                                    MAX_PACKET)
        window = self._streams.get(ssrc) or Window(self._window_size)
        index = window.estimate(seq)
        status = window.check(index)
        if status and not (status == "replay_fail" and self._repeat):
            raise _fail("protect", status)
        keys, header = self._rtp, packet[:header_length]
        if self._gcm:
            iv = keys.gcm_iv(ssrc, index)
            sealed = keys.cipher.gcm(iv, header, packet[header_length:])
            assert sealed is not None
            protected = header + sealed
        else:
            body = header + keys.cipher.ctr(keys.cm_iv(ssrc, index), packet[header_length:])
            protected = body + keys.tag(body + (index >> 16).to_bytes(4, "big"))
        if not status:
            window.add(index)
            self._streams[ssrc] = window
        return protected

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet in the SRTP ``packet``, once authenticated and checked for
        replay."""
        end = len(packet) - self._tag
        header_length, seq, ssrc = self._rtp_header("unprotect", packet, end,
                                                    MAX_PACKET + self._tag)
        window = self._streams.get(ssrc) or Window(self._window_size)
        index = window.estimate(seq)
        status = window.check(index)
        if status:
            raise _fail("unprotect", status)
        keys, header = self._rtp, packet[:header_length]
        if self._gcm:
            iv = keys.gcm_iv(ssrc, index)
            plain = keys.cipher.gcm(iv, header, packet[header_length:end], packet[end:])
            if plain is None:
                raise _fail("unprotect", "auth_fail")
        else:
            body = packet[:end]
            if not hmac.compare_digest(keys.tag(body + (index >> 16).to_bytes(4, "big")),
                                       packet[end:]):
                raise _fail("unprotect", "auth_fail")
            plain = keys.cipher.ctr(keys.cm_iv(ssrc, index), body[header_length:])
        window.add(index)
        self._streams[ssrc] = window
        return header + plain

    def _rtcp_check(self, operation: str, packet: bytes, least: int, limit: int) -> int:
        """The sender SSRC of the RTCP ``packet`` (``least`` to ``limit`` bytes long)."""
        if self._closed:
            raise SrtpError(f"{operation} failed: the session is closed")
        if len(packet) < least:
            raise _fail(operation, "bad_param", f"{len(packet)}-byte packet, too short")
        if len(packet) > limit:
            raise _fail(operation, "bad_param", f"{len(packet)}-byte packet, longer than "
                                                f"{MAX_PACKET} bytes")
        return int.from_bytes(packet[4:8], "big")

    def protect_rtcp(self, packet: bytes) -> bytes:
        """The SRTCP packet of the RTCP ``packet`` (compound or not), encrypted."""
        ssrc = self._rtcp_check("protect_rtcp", packet, 8, MAX_PACKET)
        index = self._rtcp_sent.get(ssrc, 0) + 1
        if index > 0x7FFFFFFF:
            raise _fail("protect_rtcp", "bad_param", "SRTCP index exhausted: key again")
        self._rtcp_sent[ssrc] = index
        keys, word = self._rtcp, _E_INDEX.pack(0x80000000 | index)
        if self._gcm:
            iv = keys.gcm_iv(ssrc, index)
            sealed = keys.cipher.gcm(iv, packet[:8] + word, packet[8:])
            assert sealed is not None
            return packet[:8] + sealed + word
        body = packet[:8] + keys.cipher.ctr(keys.cm_iv(ssrc, index), packet[8:]) + word
        return body + keys.tag(body)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """The RTCP packet in the SRTCP ``packet``, once authenticated and checked for
        replay."""
        tag = self._tag
        ssrc = self._rtcp_check("unprotect_rtcp", packet, 8 + 4 + tag, MAX_PACKET + 4 + tag)
        keys, n = self._rtcp, len(packet)
        word_at = n - 4 if self._gcm else n - tag - 4
        word = packet[word_at:word_at + 4]
        encrypted, index = word[0] >> 7, _E_INDEX.unpack(word)[0] & 0x7FFFFFFF
        window = self._rtcp_windows.get(ssrc) or Window(RTCP_WINDOW)
        status = window.check(index)
        if status:
            raise _fail("unprotect_rtcp", status)
        if self._gcm:
            iv = keys.gcm_iv(ssrc, index)
            sealed_end = n - 4 - _GCM_TAG
            if encrypted:
                plain = keys.cipher.gcm(iv, packet[:8] + word, packet[8:sealed_end],
                                        packet[sealed_end:n - 4])
                result = None if plain is None else packet[:8] + plain
            else:  # authenticated only: all of it is associated data
                checked = keys.cipher.gcm(iv, packet[:sealed_end] + word, b"",
                                          packet[sealed_end:n - 4])
                result = None if checked is None else packet[:sealed_end]
        else:
            body = packet[:n - tag]
            result = None
            if hmac.compare_digest(keys.tag(body), packet[n - tag:]):
                payload = packet[8:word_at]
                result = packet[:8] + (keys.cipher.ctr(keys.cm_iv(ssrc, index), payload)
                                       if encrypted else payload)
        if result is None:
            raise _fail("unprotect_rtcp", "auth_fail")
        window.add(index)
        self._rtcp_windows[ssrc] = window
        return result


def _release(*ciphers: _Cipher) -> None:
    for cipher in ciphers:
        cipher._free()

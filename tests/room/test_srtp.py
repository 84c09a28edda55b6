"""services.room.dtls.srtp (SRTP on the system's libcrypto) against libsrtp.

pylibsrtp, aiortc's own SRTP binding with its bundled libsrtp, is the reference: what one
protects the other must unprotect, and both must protect to the same bytes, for every
profile offered.
"""

from __future__ import annotations

import ctypes
import gc
import os
import random
import struct
from collections.abc import Iterator

import pytest
from pylibsrtp import Policy, Session

from services.room.dtls import openssl, srtp
from services.room.dtls.srtp import PROFILES, SrtpError, SrtpSession, supported_profiles

PYLIBSRTP_PROFILES = {
    "SRTP_AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    "SRTP_AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "SRTP_AES128_CM_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
}
# authentication tag each profile appends (RTP; SRTCP adds 4 bytes of E flag and index)
TAG_LENGTHS = {"SRTP_AEAD_AES_256_GCM": 16, "SRTP_AEAD_AES_128_GCM": 16,
               "SRTP_AES128_CM_SHA1_80": 10}
SSRCS = (0x11223344, 0xCAFEBABE)

profiles = pytest.mark.parametrize("profile", supported_profiles())


def random_key(profile: str) -> bytes:
    key_len, salt_len = PROFILES[profile]
    return os.urandom(key_len + salt_len)


def reference(profile: str, key: bytes, *, outbound: bool) -> Session:
    ssrc_type = Policy.SSRC_ANY_OUTBOUND if outbound else Policy.SSRC_ANY_INBOUND
    return Session(Policy(key=key, ssrc_type=ssrc_type,
                          srtp_profile=PYLIBSRTP_PROFILES[profile]))


def both_ways(profile: str, key: bytes) -> tuple[SrtpSession, SrtpSession, Session, Session]:
    """Our sessions out and in, then the reference's, all on ``key``."""
    return (SrtpSession(profile, key, outbound=True), SrtpSession(profile, key, outbound=False),
            reference(profile, key, outbound=True), reference(profile, key, outbound=False))


def rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 960 & 0xFFFFFFFF, ssrc) + payload


def rtcp_sr(ssrc: int, n: int) -> bytes:
    """A sender report (no report blocks) followed by an SDES CNAME chunk."""
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, n, n * 7, n * 960, n, n * 100)
    cname = b"\x01\x04room\x00\x00"
    sdes = struct.pack("!BBHI", 0x81, 202, 3, ssrc) + cname
    return sr + sdes


def stream(count: int, first_seq: int = 0, seed: int = 1) -> Iterator[bytes]:
    """RTP packets of both SSRCs, interleaved, sequence numbers rising from ``first_seq``."""
    rng = random.Random(seed)
    for i in range(count):
        for ssrc in SSRCS:
            yield rtp(first_seq + i, ssrc, rng.randbytes(rng.randint(0, 1200)))


def test_supported_profiles() -> None:
    supported = supported_profiles()
    assert "SRTP_AES128_CM_SHA1_80" in supported
    assert supported == [p for p in PROFILES if p in supported]  # strongest first
    supported.clear()  # the caller's copy
    assert "SRTP_AES128_CM_SHA1_80" in supported_profiles()


@profiles
def test_rtp_both_ways(profile: str) -> None:
    key = random_key(profile)
    ours_tx, ours_rx, ref_tx, ref_rx = both_ways(profile, key)
    for packet in stream(200):
        protected = ours_tx.protect(packet)
        assert len(protected) == len(packet) + TAG_LENGTHS[profile]
        assert protected[12:len(packet)] != packet[12:] or len(packet) == 12
        assert ref_tx.protect(packet) == protected
        assert ref_rx.unprotect(protected) == packet
        assert ours_rx.unprotect(protected) == packet


@profiles
def test_rtp_from_reference(profile: str) -> None:
    key = random_key(profile)
    ref_tx = reference(profile, key, outbound=True)
    ours_rx = SrtpSession(profile, key, outbound=False)
    for packet in stream(200, seed=2):
        assert ours_rx.unprotect(ref_tx.protect(packet)) == packet


@profiles
def test_rtcp_both_ways(profile: str) -> None:
    key = random_key(profile)
    ours_tx, ours_rx, ref_tx, ref_rx = both_ways(profile, key)
    ref_tx2 = reference(profile, key, outbound=True)
    for n in range(150):
        for ssrc in SSRCS:
            packet = rtcp_sr(ssrc, n)
            protected = ours_tx.protect_rtcp(packet)
            assert len(protected) == len(packet) + 4 + TAG_LENGTHS[profile]
            assert ref_tx.protect_rtcp(packet) == protected
            assert ref_rx.unprotect_rtcp(protected) == packet
            assert ours_rx.unprotect_rtcp(ref_tx2.protect_rtcp(packet)) == packet


@profiles
@pytest.mark.parametrize("ours_send", [True, False])
def test_sequence_number_wrap(profile: str, ours_send: bool) -> None:
    """Across 65535 -> 0 the rollover counter rises on both sides."""
    key = random_key(profile)
    if ours_send:
        tx, rx = SrtpSession(profile, key, outbound=True), reference(profile, key,
                                                                     outbound=False)
    else:
        tx, rx = reference(profile, key, outbound=True), SrtpSession(profile, key,
                                                                     outbound=False)
    ours, ref = SrtpSession(profile, key, outbound=True), reference(profile, key, outbound=True)
    for packet in stream(100, first_seq=65500):
        assert rx.unprotect(tx.protect(packet)) == packet
        assert ours.protect(packet) == ref.protect(packet)


@profiles
def test_rejects_tampered_replayed_and_foreign(profile: str) -> None:
    key = random_key(profile)
    tx, rx = SrtpSession(profile, key, outbound=True), SrtpSession(profile, key,
                                                                  outbound=False)
    foreign = reference(profile, random_key(profile), outbound=True)
    packets = list(stream(4))
    first = tx.protect(packets[0])
    assert rx.unprotect(first) == packets[0]
    with pytest.raises(SrtpError, match=r"^unprotect failed: replay_fail \(9\)$"):
        rx.unprotect(first)
    tampered = bytearray(tx.protect(packets[1]))
    tampered[20] ^= 1
    with pytest.raises(SrtpError, match=r"^unprotect failed: auth_fail \(7\)$"):
        rx.unprotect(bytes(tampered))
    with pytest.raises(SrtpError, match=r"auth_fail"):
        rx.unprotect(foreign.protect(packets[2]))
    assert rx.unprotect(tx.protect(packets[3])) == packets[3]

    report = tx.protect_rtcp(rtcp_sr(SSRCS[0], 1))
    with pytest.raises(SrtpError, match=r"^unprotect_rtcp failed: auth_fail \(7\)$"):
        rx.unprotect_rtcp(report[:10] + bytes([report[10] ^ 0x80]) + report[11:])
    assert rx.unprotect_rtcp(report) == rtcp_sr(SSRCS[0], 1)
    with pytest.raises(SrtpError, match=r"^unprotect_rtcp failed: replay_fail \(9\)$"):
        rx.unprotect_rtcp(report)
    foreign.protect_rtcp(rtcp_sr(SSRCS[0], 2))  # SRTCP index 0 (would be a replay)
    with pytest.raises(SrtpError, match=r"auth_fail"):
        rx.unprotect_rtcp(foreign.protect_rtcp(rtcp_sr(SSRCS[0], 2)))  # index 1
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp_sr(SSRCS[0], 3))) == rtcp_sr(SSRCS[0], 3)


def test_window_size_and_repeat_tx() -> None:
    profile = "SRTP_AES128_CM_SHA1_80"
    key = random_key(profile)
    tx = SrtpSession(profile, key, outbound=True)
    packets = list(stream(300))
    protected = [tx.protect(p) for p in packets]
    assert tx.protect(packets[-1]) == protected[-1]  # allow_repeat_tx=True: same packet again
    strict = SrtpSession(profile, key, outbound=True, allow_repeat_tx=False)
    strict.protect(packets[0])
    with pytest.raises(SrtpError, match="replay_fail"):
        strict.protect(packets[0])

    late = protected[-2 * 200]  # 200 packets of its SSRC behind the newest
    for window, accepted in ((1024, True), (64, False)):
        rx = SrtpSession(profile, key, outbound=False, window_size=window)
        rx.unprotect(protected[-2])
        if accepted:
            assert rx.unprotect(late) == packets[-2 * 200]
        else:
            with pytest.raises(SrtpError, match="replay_old"):
                rx.unprotect(late)
    with pytest.raises(SrtpError, match=r"^create failed: bad_param \(2\): replay window of 10"):
        SrtpSession(profile, key, outbound=False, window_size=10)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown SRTP profile 'SRTP_AES128_CM_SHA1_32'"):
        SrtpSession("SRTP_AES128_CM_SHA1_32", bytes(30), outbound=True)
    with pytest.raises(ValueError, match=r"16-byte master key and a 14-byte master salt "
                                         r"\(30 bytes\), not 28 bytes"):
        SrtpSession("SRTP_AES128_CM_SHA1_80", bytes(28), outbound=True)
    with pytest.raises(ValueError, match=r"\(44 bytes\), not 46 bytes"):
        SrtpSession("SRTP_AEAD_AES_256_GCM", bytes(46), outbound=False)


def test_packet_sizes() -> None:
    profile = "SRTP_AES128_CM_SHA1_80"
    key = random_key(profile)
    tx, rx = SrtpSession(profile, key, outbound=True), SrtpSession(profile, key,
                                                                  outbound=False)
    largest = rtp(1, SSRCS[0], bytes(srtp.MAX_PACKET - 12))
    assert rx.unprotect(tx.protect(largest)) == largest
    with pytest.raises(SrtpError, match=r"^protect failed: bad_param \(2\): 1501-byte packet, "
                                        r"longer than 1500 bytes"):
        tx.protect(largest + b"x")
    with pytest.raises(SrtpError, match=r"^protect_rtcp failed: .* longer than 1500 bytes"):
        tx.protect_rtcp(rtcp_sr(SSRCS[0], 1) + bytes(1500))
    for call in (rx.unprotect, rx.unprotect_rtcp):
        with pytest.raises(SrtpError, match="longer than 1500 bytes"):
            call(bytes(65536))
    with pytest.raises(SrtpError, match="bad_param"):
        tx.protect(b"\x80\x60\x00")  # shorter than an RTP header
    for short in (b"", b"\x80" * 11, b"\x80" * 21):
        with pytest.raises(SrtpError, match="too short"):
            rx.unprotect(short)
        with pytest.raises(SrtpError, match="too short"):
            rx.unprotect_rtcp(short)
    # a header extension or CSRC list that runs past the end of the packet
    for header in (b"\x90\x60\x00\x01" + bytes(8) + b"\xbe\xde\x00\x09",
                   b"\x8f\x60\x00\x01" + bytes(20)):
        with pytest.raises(SrtpError, match="parse_err"):
            tx.protect(header)
        with pytest.raises(SrtpError, match="parse_err"):
            rx.unprotect(header + bytes(10))
    packet = rtp(2, SSRCS[0], b"still working")
    assert rx.unprotect(tx.protect(packet)) == packet


def test_header_extensions_and_csrcs_are_authenticated_not_encrypted() -> None:
    """What libsrtp leaves in the clear (the whole header) and what it covers."""
    for profile in supported_profiles():
        key = random_key(profile)
        tx, ref_rx = SrtpSession(profile, key, outbound=True), reference(profile, key,
                                                                         outbound=False)
        rx = SrtpSession(profile, key, outbound=False)
        header = (b"\x92\x60\x00\x07" + bytes(4) + SSRCS[0].to_bytes(4, "big")
                  + b"\x00\x00\x00\x01\x00\x00\x00\x02" + b"\xbe\xde\x00\x01\x10\xaa\x00\x00")
        packet = header + b"payload" * 20
        protected = tx.protect(packet)
        assert protected[:len(header)] == header
        assert ref_rx.unprotect(protected) == packet
        changed = bytearray(protected)
        changed[len(header) - 3] ^= 0xFF  # inside the extension
        with pytest.raises(SrtpError, match="auth_fail"):
            rx.unprotect(bytes(changed))
        assert rx.unprotect(protected) == packet


def test_unencrypted_srtcp_is_read() -> None:
    """An SRTCP packet with the E flag clear (authenticated only, RFC 3711 3.4, RFC 7714
    9.3) is accepted as it is, and refused when changed. pylibsrtp cannot make one, so it
    is built here with the session keys the tests above check against libsrtp."""
    for profile in supported_profiles():
        key = random_key(profile)
        keys = srtp._Keys(srtp.libs(), profile, key, 3, True)
        report, index = rtcp_sr(SSRCS[0], 5), 7
        word = index.to_bytes(4, "big")  # E = 0
        if keys.gcm:
            iv = ((SSRCS[0] << 48 | index) ^ keys.salt).to_bytes(12, "big")
            tag = keys.cipher.gcm(iv, report + word, b"")
            assert tag is not None
            packet = report + tag + word
        else:
            packet = report + word + keys.tag(report + word)
        rx = SrtpSession(profile, key, outbound=False)
        changed = bytearray(packet)
        changed[9] ^= 1
        with pytest.raises(SrtpError, match="auth_fail"):
            rx.unprotect_rtcp(bytes(changed))
        assert rx.unprotect_rtcp(packet) == report
        with pytest.raises(SrtpError, match="replay_fail"):
            rx.unprotect_rtcp(packet)


def test_close() -> None:
    session = SrtpSession("SRTP_AES128_CM_SHA1_80", bytes(30), outbound=True)
    finalizer = session._finalizer
    session.close()
    assert not finalizer.alive
    session.close()
    for call in (session.protect, session.protect_rtcp, session.unprotect,
                 session.unprotect_rtcp):
        with pytest.raises(SrtpError, match="session is closed"):
            call(rtp(1, SSRCS[0], b""))


def test_dropped_session_is_freed() -> None:
    session = SrtpSession("SRTP_AES128_CM_SHA1_80", bytes(30), outbound=True)
    finalizer = session._finalizer
    assert finalizer.alive
    del session
    gc.collect()
    assert not finalizer.alive


def test_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(openssl, "_libs", None)
    monkeypatch.setattr(openssl.ctypes, "CDLL", missing)
    with pytest.raises(openssl.DtlsError, match="Debian package libssl3"):
        SrtpSession("SRTP_AES128_CM_SHA1_80", bytes(30), outbound=True)

"""The publish rows' native reference really publishes: SRTP that the key opens, RTP of
the room's codec and of Opus, a packet per frame at least, the tone's 50 packets a
second, and the CPU it took."""

from __future__ import annotations

import itertools

import pytest
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from bench import bench_encode, native_publish

FRAMES = 45  # 1.5 s


def _opened(key: str, datagrams: list[bytes]) -> list[bytes]:
    import base64

    policy = Policy(key=base64.b64decode(key), ssrc_type=Policy.SSRC_ANY_INBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    session = Session(policy=policy)
    return [session.unprotect(d) for d in datagrams]


@pytest.fixture(scope="module")
def planes() -> list[bytes]:
    return bench_encode.render_frames()[:10]


@pytest.mark.parametrize("vp8", [False, True], ids=["h264", "vp8"])
def test_the_native_publisher_sends_srtp_of_both_streams(planes: list[bytes],
                                                         vp8: bool) -> None:
    got = native_publish.publish_cpu(planes, vp8=vp8, frames=FRAMES, keep=True)
    assert got["returncode"] == 0, got["stderr"]
    assert native_publish.sent_everything(got), got
    assert got["cpu_s"] > 0
    video = [RtpPacket.parse(p) for p in _opened(got["key"], got["video"]["first"])]
    audio = [RtpPacket.parse(p) for p in _opened(got["key"], got["audio"]["first"])]
    # one SSRC per stream, numbered in order, at most the packet size the box uses
    assert len({p.ssrc for p in video}) == 1 and len({p.ssrc for p in audio}) == 1
    assert all(len(d) <= native_publish.PACKET_BYTES + 10 for d in got["video"]["first"])
    first = video[0].payload
    if vp8:
        # a VP8 payload descriptor starts the first partition (S bit), then a keyframe
        assert first[0] & 0x10
    else:
        # H.264 (RFC 6184): a parameter set, a STAP-A or a FU-A of an IDR slice first
        assert first[0] & 0x1F in (7, 24, 28)
    # the tone: Opus packets 960 samples (20 ms at 48 kHz) apart
    stamps = [p.timestamp for p in audio]
    assert {b - a for a, b in itertools.pairwise(stamps)} == {960}

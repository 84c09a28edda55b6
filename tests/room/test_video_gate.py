"""Received video is decoded only while something takes it, and with one thread a stream.

A box subscribed to the members' video (``video.receive = true``) with nothing showing
it opens no video decoder; once a consumer is there, decoding starts at a keyframe (no
decode error, no garbage frame first), each decoder opened with one thread.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import aiortc.rtcrtpreceiver as aiortc_receiver
import av
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from services.room.decoders import DECODER_THREADS
from services.room.video_gate import VideoGate, is_keyframe

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]


def _video_gates(peer: Any) -> list[VideoGate]:
    pc = peer.session._backend.sub_pc
    if pc is None:  # the roster shows a member before its subscription is answered
        return []
    return [t.receiver._RTCRtpReceiver__jitter_buffer for t in pc.getTransceivers()
            if t.kind == "video"]


def test_video_is_decoded_only_while_shown_and_from_a_keyframe(
        make_peer: Any, room_number: int, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    opened: list[Any] = []
    original = aiortc_receiver.get_decoder

    def recording(codec: Any) -> Any:
        decoder = original(codec)
        if codec.mimeType.lower().startswith("video/"):
            opened.append(decoder)
        return decoder

    monkeypatch.setattr(aiortc_receiver, "get_decoder", recording)
    caplog.set_level(logging.WARNING, logger="aiortc")
    cam = make_peer("cam", room_number, tone=None, camera=True)
    cam.call(lambda s: s.join())
    box = make_peer("box", room_number, tone=None, receive_video=True)
    box.call(lambda s: s.join())
    cam_id = cam.session.local_id
    box.wait_for(lambda: any(m.id == cam_id and m.has_video for m in box.session.members()),
                 what="the camera member, with video, in the roster")
    box.wait_for(lambda: _video_gates(box) and all(isinstance(g, VideoGate)
                                                   for g in _video_gates(box)),
                 timeout=20, what="the video receiver gated")
    # video arrives and is reassembled, but nobody shows it: no decoder is even opened
    box.wait_for(lambda: sum(g.held for g in _video_gates(box)) >= 30, timeout=20,
                 what="received video frames")
    assert opened == []
    assert sum(g.passed for g in _video_gates(box)) == 0

    seen: list[Any] = []
    box.call(lambda s: s.set_remote_video_consumer(lambda member, frame: seen.append(frame)))
    box.wait_for(lambda: len(seen) >= 20, timeout=20, what="decoded remote video")
    assert seen[0].key_frame  # the decoder started at a keyframe
    assert len(opened) == 1
    assert opened[0].codec.thread_count == DECODER_THREADS == 1
    assert not [r for r in caplog.records if "failed to decode" in r.getMessage()]

    # nobody shows it again: frames stop reaching the decoder
    box.call(lambda s: s.set_remote_video_consumer(None))
    passed = sum(g.passed for g in _video_gates(box))
    held = sum(g.held for g in _video_gates(box))
    box.wait_for(lambda: sum(g.held for g in _video_gates(box)) >= held + 20, timeout=20,
                 what="video held back again")
    assert sum(g.passed for g in _video_gates(box)) <= passed + 1  # one may be in flight


def _encoded(name: str, frames: int = 12) -> list[Any]:
    ctx: Any = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 120, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.gop_size = 10
    if name == "libx264":  # keyframes every 10 frames exactly
        ctx.options = {"x264-params": "scenecut=0:keyint=10:min-keyint=10"}
    ctx.open()
    packets = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(
            np.full((180, 160), (i * 20) % 256, np.uint8), format="yuv420p")
        frame.pts = i
        packets += ctx.encode(frame)
    return packets + list(ctx.encode(None))


def test_keyframes_of_both_codecs_are_told_from_delta_frames() -> None:
    for name in ("libx264", "libvpx"):
        packets = _encoded(name)
        keys = [is_keyframe(bytes(p)) for p in packets]
        assert keys == [p.is_keyframe for p in packets], name
        assert keys[0] and not all(keys), name


def test_the_gate_waits_for_a_keyframe_when_opened_and_when_the_sender_changes() -> None:
    packets = _encoded("libx264", 25)  # keyframes at 0, 10, 20
    wanted = [False]
    gate = VideoGate(128, lambda: wanted[0])
    seq = [0]

    def feed(i: int, ssrc: int = 1) -> tuple[bool, Any]:
        """Frame ``i`` as one RTP packet; the gate hands out the frame before it."""
        rtp = RtpPacket(payload_type=96, sequence_number=seq[0], timestamp=i * 3000,
                        ssrc=ssrc, payload=b"x")
        rtp._data = bytes(packets[i])  # type: ignore[attr-defined]  # as aiortc depayloads
        seq[0] += 1
        return gate.add(rtp)

    assert [feed(i) for i in range(4)] == [(False, None)] * 4  # nobody shows it
    assert gate.held == 3 and gate.passed == 0
    wanted[0] = True
    pli, frame = feed(4)  # hands out frame 3, a delta frame: held, a keyframe asked for
    assert pli and frame is None
    results = [feed(i) for i in range(5, 11)]  # frames 4..9: deltas, none passed
    assert all(f is None for _, f in results)
    assert not any(p for p, _ in results)  # asked once a second, not per packet
    pli, frame = feed(11)  # frame 10, a keyframe, passes
    assert frame is not None and is_keyframe(frame.data)
    pli, frame = feed(12)  # and the deltas after it
    assert frame is not None and not is_keyframe(frame.data)
    assert gate.passed == 2
    # another sender on the stream: its frames wait for its keyframe
    pli, frame = feed(13, ssrc=2)
    assert frame is None or is_keyframe(frame.data)
    assert all(feed(i, ssrc=2)[1] is None for i in range(14, 21))  # 13..19: deltas
    pli, frame = feed(21, ssrc=2)
    assert frame is not None and is_keyframe(frame.data)  # frame 20

"""Encode once: room publishing, recording and RTMP at the same time share one encode.

The box publishes to a real Janus (in a private network namespace) while it records and
pushes to nginx-rtmp (on the loopback of the same namespace); a second member receives
its video. One video encoder instance exists, it encodes each captured frame once, and
aiortc sends the shared encoder's packets without encoding anything itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiortc.codecs.h264 import H264Encoder

from services.media.encoder import SharedVideoEncoder
from services.room.api import RoomState
from services.room.session import JanusRoomSession
from tests.harness.netns import NsLoop
from tests.harness.polling import wait_for

from .conftest import RtmpServer, is_increasing, probe
from .helpers import Events, media_box

pytestmark = [pytest.mark.janus, pytest.mark.slow, pytest.mark.timeout(150)]


def _video_sender(session: JanusRoomSession) -> Any:
    pc = session._backend.pub_pc  # type: ignore[union-attr]
    [sender] = [s for s in pc.getSenders() if s.track is not None and s.kind == "video"]
    return sender


def test_room_recording_and_rtmp_share_one_encode(network: Any, janus: Any, make_peer: Any,
                                                  room_number: int, tmp_path: Path) -> None:
    host = network.add_host("media")
    rtmp = RtmpServer(tmp_path / "nginx", netns=host.ns)
    rtmp.start()
    loop = NsLoop(host)
    events = Events()
    media, session = media_box(loop, janus.url, room_number, tmp_path, events)
    viewer = make_peer("viewer", room_number, tone=None, collect_video=True)
    try:
        loop.run(session.join(), 30)
        assert session.state == RoomState.IN_ROOM
        loop.run(media.start_recording(), 10)
        loop.run(media.start_stream(rtmp.url()), 10)
        viewer.call(lambda s: s.join())
        box_id = session.local_id
        wait_for(lambda: len(viewer.video_numbers.get(box_id, [])) > 60, 30,
              "60 frames of the box at the viewer")
        wait_for(lambda: media.streamer.state == "live", 10, "the RTMP push")
        time.sleep(1.0)
        assert SharedVideoEncoder.running == 1  # one encoder, with three outputs on
        assert media.video.subscribers == 3  # the room, the recorder, the RTMP push
        sender = _video_sender(session)
        aiortc_encoder = sender._RTCRtpSender__encoder
        # aiortc packetized our packets: its own H.264 encoder never opened a codec
        assert isinstance(aiortc_encoder, H264Encoder) and aiortc_encoder.codec is None
        [track] = media._room_tracks
        assert track.packets > 60
        # the viewer joining made Janus ask the publisher for a keyframe (RTCP PLI/FIR)
        assert track.keyframe_requests >= 1
        loop.run(media.stop_stream(), 10)
        loop.run(media.stop_recording(), 10)
        loop.run(session.leave(), 10)
    finally:
        try:
            loop.run(session.close(), 10)
            loop.run(media.close(), 10)
        finally:
            loop.close()
            rtmp.stop()

    enc = media.video
    assert SharedVideoEncoder.created == 1
    assert enc.codec_opens == 1 and enc.duplicate_frames == 0
    # every frame read from the camera was encoded exactly once (but for a frame read in a
    # moment when no output was attached yet or any more, or one the video budget skipped
    # while the audio was late), and nothing else was. Unused: one as the first output
    # attached, and those read between the last one leaving and the camera closing (one
    # at 30 fps on a quiet machine, a few when it is loaded; a camera left running would
    # add 30 a second)
    assert enc.frames_unused <= 5
    assert (enc.frames_encoded + enc.frames_unused + enc.budget.frames_skipped
            == enc.camera_totals["delivered"])
    assert enc.packets_out == enc.frames_encoded

    seen = viewer.video_numbers[box_id]
    assert seen == sorted(seen)
    [record] = events.named("recording-segment")
    recorded = probe(tmp_path / "recordings" / record["file"])
    [flv] = rtmp.recordings()
    streamed = probe(flv)
    for got in (recorded, streamed):
        assert (got["video_codec"], got["audio_codec"]) == ("h264", "aac")
        assert got["unreadable_strips"] == 0 and is_increasing(got["frame_numbers"])
    # the three outputs carried the same frames (each output starts at its own keyframe)
    common = set(recorded["frame_numbers"]) & set(streamed["frame_numbers"]) & set(seen)
    assert len(common) > 45
    assert max(recorded["frame_numbers"]) <= enc.camera_totals["captured"]

"""The camera's video leaves the box without its event loop.

The box (the media service's shared encoder and a room session, on their own loop in a
namespace) publishes into a real Janus; a viewer decodes its video. The test then blocks
the box's event loop for :data:`STALL_S` (a blocking call in a loop callback, what a
slow disk write or a stuck driver call would do) and shows that the viewer keeps
decoding the box's frames during the stall, frames captured during it: the camera is
read, and each frame encoded, packetized, protected and sent, in the camera's frame
thread and the encoder's thread.
Audio is on the loop, and stops for the stall; that is not what this test is about.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.media.service import MediaService
from services.room.api import RoomState
from services.room.session import JanusRoomSession
from tests.harness.netns import Network, NsLoop
from tests.harness.stall import block_loop
from tests.media.helpers import FPS, Events, media_box

# the test blocks the box's loop on purpose: the loop guard would (rightly) fail it
pytestmark = [pytest.mark.janus, pytest.mark.timeout(150), pytest.mark.loop_guard_off]

STALL_S = 1.5
#: the part of the stall over which frames are counted (the first frames after it
#: starts may have been sent just before; the viewer's jitter buffer may hold the last)
MARGIN_S = 0.3


def _build(network: Network, url: str, room: int, tmp_path: Path,
           events: Events) -> tuple[NsLoop, MediaService, JanusRoomSession]:
    loop = NsLoop(network.add_host("box"))
    media, session = media_box(loop, url, room, tmp_path, events)
    return loop, media, session


@pytest.mark.parametrize("videocodec", ["vp8", "h264"])
def test_video_keeps_flowing_while_the_box_loop_is_blocked(
        videocodec: str, network: Network, janus: Any, make_peer: Any,
        room_with_codec: Any, tmp_path: Path) -> None:
    room = room_with_codec(videocodec)
    events = Events()
    loop, media, session = _build(network, janus.url, room, tmp_path, events)
    viewer = make_peer("viewer", room, tone=None, collect_video=True)
    try:
        loop.run(session.join(), 30)
        assert session.state == RoomState.IN_ROOM and session.video_codec == videocodec
        viewer.call(lambda s: s.join())
        box_id = session.local_id
        viewer.wait_for(lambda: len(viewer.video_numbers.get(box_id, [])) > 30, timeout=40,
                        what="30 decoded frames of the box")
        time.sleep(1.0)  # past the first keyframe interval

        began, ended = block_loop(loop, STALL_S)

        viewer.wait_for(lambda: viewer.video_arrivals[box_id][-1][0] > ended + 0.5,
                        timeout=10, what="frames after the stall")
        arrivals = list(viewer.video_arrivals[box_id])
        window = [(t, n) for t, n in arrivals if began + MARGIN_S <= t <= ended - MARGIN_S]
        seconds = STALL_S - 2 * MARGIN_S
        # the rate the viewer decoded at before (the budget may hold the encode below the
        # camera's rate on a loaded machine)
        before = [n for t, n in arrivals if began - 2.0 <= t < began - MARGIN_S]
        rate_before = len(before) / (2.0 - MARGIN_S)
        # at least half that rate arrived and was decoded while the loop was blocked
        around = [(round(t - began, 2), n) for t, n in arrivals if began - 1 < t < ended + 1]
        assert rate_before >= 0.25 * FPS, f"{rate_before:.1f} fps before the stall: {around}"
        assert len(window) >= 0.5 * rate_before * seconds, (
            f"{len(window)} frames decoded in the {seconds:.1f} s the box's loop was "
            f"blocked ({rate_before:.1f} fps before); arrivals around it: {around}")
        # ... and they were new frames, captured during the stall, in order
        numbers = [n for _, n in window]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        assert (numbers[-1] - numbers[0]) / FPS >= 0.5 * seconds

        # the sender sent from the frame thread, through the locked SRTP session
        from services.room.srtp_lock import LockedSrtpSession

        pc = session._backend.pub_pc  # type: ignore[union-attr]
        [sender] = [s for s in pc.getSenders() if s.kind == "video"]
        sink = sender.rtp_sink
        assert sink is not None and sink.frames > 0 and sink.failed is None
        assert sink.threads == {"video-camera"}, sink.threads  # the camera's frame thread
        assert isinstance(pc.getSenders()[0].transport._tx_srtp, LockedSrtpSession)
        loop.run(session.leave(), 10)
        assert sink._closed
    finally:
        try:
            loop.run(session.close(), 10)
            loop.run(media.close(), 10)
        finally:
            loop.close()

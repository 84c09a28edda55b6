"""``video.receive = "auto"``: remote video is subscribed only while something consumes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.config import Config, VideoConfig
from device.settings import room_session
from services.room import create_session
from services.room.api import RoomState
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]


def _subscribed_kinds(peer: Any) -> list[str]:
    backend = peer.session._backend
    return sorted(kind for _, kind in backend._mid_feed.values())


def test_auto_subscribes_audio_only_until_something_shows_video(make_peer: Any,
                                                                 room_number: int) -> None:
    cam = make_peer("cam", room_number, tone="tone:440", camera=True)
    cam.call(lambda s: s.join())
    box = make_peer("box", room_number, tone=None, receive_video="auto")
    assert box.session.settings.receive_video == "auto"
    box.call(lambda s: s.join())
    assert box.session.state == RoomState.IN_ROOM
    cam_id = cam.session.local_id
    box.wait_for(lambda: any(m.id == cam_id and m.has_video for m in box.session.members()),
                 what="the camera member, with video, in the roster")
    wait_tone(box.speaker_path, 440)  # its audio is received and played
    # only the audio stream is subscribed: no video m-line, nothing decoded
    assert _subscribed_kinds(box) == ["audio"]
    pc = box.session._backend.sub_pc
    assert [t.kind for t in pc.getTransceivers()] == ["audio"]

    # something starts showing remote video: it is subscribed at once
    seen: dict[str, int] = {}

    def consumer(member_id: str, frame: Any) -> None:
        seen[member_id] = seen.get(member_id, 0) + 1

    box.call(lambda s: s.set_remote_video_consumer(consumer))
    box.wait_for(lambda: seen.get(cam_id, 0) > 10, timeout=20, what="decoded remote video")
    assert _subscribed_kinds(box) == ["audio", "video"]
    # ... and stops: back to audio only, the audio still playing
    box.call(lambda s: s.set_remote_video_consumer(None))
    box.wait_for(lambda: _subscribed_kinds(box) == ["audio"], timeout=15,
                 what="the video subscription dropped")
    wait_tone(box.speaker_path, 440)
    assert box.session.state == RoomState.IN_ROOM


def test_auto_is_the_default_and_reaches_the_session(tmp_path: Path) -> None:
    assert Config().video.receive == "auto"
    config = Config(video=VideoConfig(receive="auto"))
    session = create_session(room_session(config), tmp_path, sim=True)
    assert session.settings.receive_video == "auto"
    assert session._wants_video() is False  # nothing on the box consumes remote video
    for value in (True, False):
        config = Config(video=VideoConfig(receive=value))
        session = create_session(room_session(config), tmp_path, sim=True)
        assert session.settings.receive_video is value
        assert session._wants_video() is value

"""Video room: two boxes hear each other and B sees A's camera."""

from __future__ import annotations

import time

import pytest

from services.room.api import RoomState
from tests.harness.audio import dominant_hz, wav_tail
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]


def test_two_boxes_hear_and_see_each_other(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440", camera=True)
    b = make_peer("b", room_number, tone="tone:880", camera=True, collect_video=True)
    a.call(lambda s: s.join())
    a.wait_event("talking", lambda d: d["id"] == "local" and d["talking"])
    b.call(lambda s: s.join())  # A is already talking: B learns it from the room
    assert a.session.state == RoomState.IN_ROOM
    assert b.session.state == RoomState.IN_ROOM
    a_id, b_id = a.session.local_id, b.session.local_id

    # members: each sees the other, with audio and video
    a.wait_for(lambda: any(m.id == b_id and m.has_video for m in a.session.members()),
               what="B in A's roster")
    assert [m.display for m in b.session.members()] == ["a"]

    wait_tone(b.speaker_path, 440)
    wait_tone(a.speaker_path, 880)
    time.sleep(1.0)
    assert abs(dominant_hz(wav_tail(b.speaker_path, 1.0)) - 440) < 5
    assert abs(dominant_hz(wav_tail(a.speaker_path, 1.0)) - 880) < 5

    # B reads A's frame numbers from the strip: increasing, < 5 % missing
    b.wait_for(lambda: len(b.video_numbers.get(a_id, [])) > 45, timeout=20,
               what="45 frames of A's camera")
    numbers = b.video_numbers[a_id][5:]  # skip the first keyframe interval
    assert numbers == sorted(numbers), "frame numbers went backwards"
    # Of the frames A's camera handed to the encoder in that span, how many B never saw
    # (ticks the camera skipped on a starved CPU were never sent, so they do not count).
    sent = {n for n in a.video_sent if numbers[0] <= n <= numbers[-1]}
    missing = 1 - len(sent & set(numbers)) / len(sent)
    assert missing < 0.05, f"{missing:.1%} of A's frames missing ({len(numbers)}/{len(sent)})"

    # talking events: A's tone makes A talk, at B (and locally at A, above)
    b.wait_event("talking", lambda d: d["id"] == a_id and d["talking"])
    assert b.session.roster.get(a_id).talking
    # stats once a second
    stats = b.wait_event("stats", lambda d: a_id in d.get("members", {})
                         and d["members"][a_id]["bitrate_kbps"] > 0)
    assert stats["up"]["bitrate_kbps"] > 0
    assert stats["members"][a_id]["jitter_ms"] >= 0
    # A's voice goes through B's jitter buffer for A (packets, not aiortc's frames)
    playout = stats["members"][a_id]
    assert playout["target_ms"] >= 10 and playout["delay_ms"] > 0
    assert 0 <= playout["concealed_pct"] < 50 and playout["late"] >= 0
    entered = b.names("entered")
    assert len(entered) == 1 and entered[0]["member_id"] == b_id


def test_audio_only_receive_skips_video(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440", camera=True)
    b = make_peer("b", room_number, tone=None, collect_video=True, receive_video=False)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440)
    time.sleep(0.5)
    assert b.video_numbers == {}
    receivers = b.call(lambda s: {k: [r.track.kind for r in v]
                                  for k, v in s._backend.member_receivers().items()})
    assert receivers == {a.session.local_id: ["audio"]}


def test_video_off_closes_the_camera_and_on_reopens_it(make_peer, room_number):
    a = make_peer("a", room_number, tone=None, camera=True)
    b = make_peer("b", room_number, tone=None, collect_video=True)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    a_id = a.session.local_id
    b.wait_for(lambda: len(b.video_numbers.get(a_id, [])) > 10, timeout=20, what="A's video")
    [track] = a.session._video
    camera = track.inner.camera
    a.call(lambda s: s.set_video(False))
    assert a.session.controls.video_enabled is False
    a.wait_for(lambda: camera._stopped, what="camera closed")
    time.sleep(0.5)
    count = len(b.video_numbers[a_id])
    time.sleep(1.0)
    assert len(b.video_numbers[a_id]) <= count + 1  # nothing new arrives
    a.call(lambda s: s.set_video(True))
    assert track.inner.camera is not camera  # a new camera was opened
    b.wait_for(lambda: len(b.video_numbers[a_id]) > count + 10, timeout=20,
               what="video again")

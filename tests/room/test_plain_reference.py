"""The plain aiortc member the benchmarks compare with (``bench/plain_aiortc.py``) is a
working room member on its own: in a default VP8 room and in an H.264 room it joins a
real Janus, its tone and video reach one of our boxes, and it receives and decodes that
box's video, also when the box joins after it. And it is plain: importing it loads none
of the appliance's room code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import plain_aiortc
from tests.harness.appliance import REPO
from tests.room.conftest import wait_tone

SECONDS = 8.0


def test_the_reference_loads_none_of_the_appliance_s_room_code() -> None:
    code = ("import sys, bench.plain_aiortc; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'services', 'device'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.janus
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("codecs", "expected"), [("vp8", "VP8"), ("h264,vp8", "H264")])
def test_the_reference_publishes_and_receives(network, janus, make_peer, room_with_codec,
                                              codecs, expected):
    room = room_with_codec(codecs)
    box = make_peer("box", room, tone="tone:880", camera=True, collect_video=True)
    box.call(lambda s: s.join())
    client = plain_aiortc.launch(network.add_host(f"plain{len(network.hosts)}"), janus.url,
                                 room, SECONDS, "640", "480", "30", "tone:300")
    try:
        # the box hears the reference's tone while it is in the room
        wait_tone(box.speaker_path, 300, timeout=30)
    finally:
        out, _ = client.communicate(timeout=60)
    assert client.returncode == 0, out
    assert "joined" in out and f"video codec: {expected}" in out, out
    assert "sim mic: tone:300 (frame 0 at " in out, out
    assert "subscriber to " in out and " connected" in out, out
    received = int(out.split("video frames received:")[1].split()[0])
    assert received >= SECONDS * 15 / 3, out  # the box's 320x240@15 camera, decoded
    numbers = [n for nums in box.video_numbers.values() for n in nums]
    assert len(set(numbers)) >= SECONDS * 30 / 3, (len(numbers), out)


@pytest.mark.janus
@pytest.mark.timeout(120)
def test_the_reference_subscribes_to_a_member_who_joins_after_it(network, janus, make_peer,
                                                                 room_with_codec):
    room = room_with_codec("vp8")
    client = plain_aiortc.launch(network.add_host(f"plain{len(network.hosts)}"), janus.url,
                                 room, 10, "640", "480", "30", "tone:300")
    said = ""
    try:
        said = plain_aiortc.wait_joined(client)
        box = make_peer("late", room, tone="tone:880", camera=True, collect_video=True)
        box.call(lambda s: s.join())
        wait_tone(box.speaker_path, 300, timeout=30)
    finally:
        out, _ = client.communicate(timeout=60)
    out = said + out
    assert client.returncode == 0, out
    assert "subscriber to " in out and " connected" in out, out
    assert int(out.split("video frames received:")[1].split()[0]) >= 30, out

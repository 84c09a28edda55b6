"""The box in a room configured as Janus ships its own demo room (room 1234 of its
sample ``janus.plugin.videoroom.jcfg``): 6 publishers at 128 kbit/s, a keyframe asked for
every 10 s, and Janus's defaults otherwise (VP8, Opus, no ``talking`` events, no news of
listeners). People start there; the harness's other rooms are set up more kindly."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.media.packets import PacketSubscription
from services.room.api import RoomState
from tests.harness.fixtures import stock_room  # noqa: F401  (fixture)
from tests.room.conftest import wait_tone
from tests.room.test_codecs import box_in  # noqa: F401  (fixture)

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]


def test_the_box_in_a_stock_room(box_in: Any, make_peer: Any,  # noqa: F811
                                 stock_room: int) -> None:  # noqa: F811
    box = box_in(stock_room)
    box.run(box.session.join())
    assert box.session.state == RoomState.IN_ROOM
    assert box.session.video_codec == "vp8" and box.session.audio_codec == "opus"
    probe: PacketSubscription = box.media.video.subscribe("probe", 100_000, codec="vp8")
    viewer = make_peer("viewer", stock_room, tone="tone:600", collect_video=True)
    viewer.call(lambda s: s.join())
    box_id = box.session.local_id
    wait_tone(viewer.speaker_path, 440, timeout=20)
    wait_tone(box.speaker, 600, timeout=20)
    viewer.wait_for(lambda: len(viewer.video_numbers.get(box_id, [])) > 60, timeout=40,
                    what="60 decoded frames of the box")
    # the room's 128 kbit/s cap reaches the VP8 encode (Janus's REMB)
    deadline = time.monotonic() + 15
    vp8: dict[str, Any] = {}
    while time.monotonic() < deadline:
        vp8 = box.media.status()["encoder"]["encodes"]["vp8"]
        if vp8["bitrate_kbps"] <= 128:
            break
        time.sleep(0.5)
    assert vp8["bitrate_kbps"] <= 128, vp8
    # and frames keep coming, in order, at that rate
    count = len(viewer.video_numbers[box_id])
    time.sleep(4.0)
    numbers = viewer.video_numbers[box_id]
    assert len(numbers) - count >= 60, len(numbers) - count  # 15+ fps decoded
    assert numbers == sorted(numbers)
    sent = {p.index for p in probe.drain()}
    assert sent, "the encoder made no VP8 frames"
    # who talks: from the audio levels (the room says nothing)
    viewer_id = viewer.session.local_id
    assert any(m.id == viewer_id and m.talking for m in box.session.members())


def test_a_full_room_is_listened_to_until_a_place_frees(box_in: Any,  # noqa: F811
                                                        make_peer: Any,
                                                        stock_room: int) -> None:  # noqa: F811
    """The demo room takes 6 publishers. The box joins a room that has them: it listens
    (in the room, hearing everyone) with a ``ROOM_FULL`` warning, instead of failing
    and retrying; when a publisher stops, it publishes. Before, it went round
    ``reconnecting`` for as long as the room stayed full, hearing nothing."""
    peers = []
    for i in range(6):
        peer = make_peer(f"p{i}", stock_room, tone="tone:600" if i == 0 else None)
        peer.call(lambda s: s.join())
        peers.append(peer)
    box = box_in(stock_room)
    box.run(box.session.join())
    assert box.session.state == RoomState.IN_ROOM
    [warning] = box.events.named("room-warning")
    assert warning["code"] == "ROOM_FULL" and "listening" in warning["message"]
    assert "(6)" in warning["message"]
    assert box.session.warnings == [warning]
    wait_tone(box.speaker, 600, timeout=20)  # it hears the room meanwhile
    assert box.session._backend.pub_pc is None
    assert not box.media.status()["mic"]["open"]  # not sent: not open (nor its LED)
    assert box.session.audio_codec is None
    assert box.events.named("reconnecting") == []
    box_id = box.session.local_id
    assert all(box_id not in p.session._backend.publishers for p in peers)

    peers[5].call(lambda s: s.leave())  # a place frees up
    listener = peers[1]
    listener.wait_for(lambda: box_id in listener.session._backend.publishers, timeout=20,
                      what="the box publishing")
    wait_tone(listener.speaker_path, 440, timeout=20)
    assert box.session.warnings == []
    assert box.media.status()["mic"]["open"] and box.session.audio_codec == "opus"
    assert box.session.state == RoomState.IN_ROOM
    assert box.events.named("reconnecting") == []


def test_a_stock_voice_room(make_peer: Any, stock_room: int) -> None:  # noqa: F811
    """Janus's sample voice room mixes at 16 kHz and says nothing of who talks: the
    boxes hear each other through its mix (wideband Opus, played at 48 kHz)."""
    a = make_peer("a", stock_room, tone="tone:440", backend="audiobridge")
    b = make_peer("b", stock_room, tone="tone:660", backend="audiobridge")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(a.speaker_path, 660, threshold=0.05)
    wait_tone(b.speaker_path, 440, threshold=0.05)
    wait_tone(a.speaker_path, 440, present=False, threshold=0.05)  # not itself
    b_id = b.session.local_id
    a.wait_for(lambda: b_id in {m.id for m in a.session.members()}, what="b in a's roster")
    assert a.session.audio_codec == "opus"

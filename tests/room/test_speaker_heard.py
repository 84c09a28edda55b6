"""The room's speaker rests when nothing in the room can be heard, not only when nobody
sends audio: with the speaker off, the box deaf, every member muted here, and in a voice
room while the box is alone or every other participant is muted (the bridge still sends
its mix of silence). Switched back on, the voice plays again at once and at its usual
delay: what arrived while the speaker rested is dropped, not played late. Switching the
speaker on also tries a device that failed to open again.

Peers on a real Janus, with a short hold so each rest comes quickly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.peers import RoomPeer
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

HOLD = 0.5


def wait_state(peer: RoomPeer, state: str, timeout: float = HOLD + 5.0) -> float:
    """Wait until the peer's room speaker is ``state``; the seconds it took."""
    t0 = time.monotonic()
    peer.wait_for(lambda: peer.session.speaker_state == state, timeout=timeout,
                  what=f"the room speaker {state}")
    return time.monotonic() - t0


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def assert_resting(peer: RoomPeer, seconds: float) -> None:
    """For ``seconds``: the speaker rests, its thread is gone and its WAV does not grow."""
    before = size(peer.speaker_path)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert peer.session.speaker_state == "resting", peer.session.speaker_state
        assert "stopped" in repr(peer.session.speaker), peer.session.speaker
        time.sleep(0.1)
    assert size(peer.speaker_path) == before, "the speaker's WAV grew while it rested"


def playout(peer: RoomPeer, key: str) -> dict[str, Any]:
    stats: dict[str, Any] = peer.call(lambda s: s.mixer.source_stats())
    return dict(stats[key])


def test_speaker_off_deaf_and_mute_all_let_the_speaker_rest(make_peer, room_number):
    talker = make_peer("talker", room_number, tone="tone:880")
    box = make_peer("box", room_number, tone=None, speaker_hold_s=HOLD)
    talker.call(lambda s: s.join())
    box.call(lambda s: s.join())
    talker_id = talker.session.local_id
    wait_tone(box.speaker_path, 880)
    assert box.session.speaker_state == "playing"
    time.sleep(2.0)  # the jitter buffer settles at its delay
    settled = playout(box, talker_id)["delay_ms"]

    switches = [("speaker off", lambda s: s.set_speaker(False), lambda s: s.set_speaker(True)),
                ("deaf", lambda s: s.set_deaf(True), lambda s: s.set_deaf(False)),
                ("mute all", lambda s: s.mute_all(True), lambda s: s.mute_all(False))]
    for what, off, on in switches:
        box.call(off)
        rested = wait_state(box, "resting")
        print(f"{what}: the speaker rested {rested:.2f} s later")
        assert rested >= HOLD - 0.1, f"{what}: rested before its hold"
        assert_resting(box, 2.5)  # more than the jitter buffer's 100 packets
        stats = box.call(lambda s: s.stats())
        if stats.get("members"):
            assert stats["members"][talker_id]["level_dbfs"] is None, stats["members"]
        box.call(on)
        wait_state(box, "playing", timeout=3.0)
        wait_tone(box.speaker_path, 880, timeout=5)
        time.sleep(1.5)
        back = playout(box, talker_id)
        print(f"{what}: back on, playout delay {back['delay_ms']} ms "
              f"(settled {settled} ms), {back['dropped']} packets dropped")
        # what came while it rested was dropped, not queued in front of the voice
        assert back["delay_ms"] <= settled + 80, (what, back, settled)
        assert back["waiting"] <= 10, (what, back)
    assert box.session.roster.get(talker_id) is not None


def test_voice_room_speaker_rests_alone_and_while_the_others_are_muted(
        make_peer, room_number):
    box = make_peer("box", room_number, tone=None, backend="audiobridge",
                    speaker_hold_s=HOLD)
    box.call(lambda s: s.join())
    box.wait_for(lambda: box.session.mixer.keys() == ["mix"], timeout=20,
                 what="the bridge's mix in the mixer")
    wait_state(box, "resting")
    # alone: the bridge sends a mix of silence; the speaker does not play it
    assert_resting(box, 2.0)
    assert not box.speaker_path.exists()

    talker = make_peer("talker", room_number, tone="tone:660", backend="audiobridge")
    talker.call(lambda s: s.join())
    wait_tone(box.speaker_path, 660, timeout=20)
    assert box.session.speaker_state == "playing"

    talker_id = talker.session.local_id
    talker.call(lambda s: s.set_mic(False))
    box.wait_for(lambda: box.session.roster.get(talker_id).audio_muted, what="talker muted")
    wait_state(box, "resting")
    assert_resting(box, 1.5)

    talker.call(lambda s: s.set_mic(True))
    wait_state(box, "playing", timeout=3.0)
    wait_tone(box.speaker_path, 660, timeout=10)

    talker.call(lambda s: s.leave())
    wait_state(box, "resting")
    assert_resting(box, 1.0)


def test_switching_the_speaker_on_tries_a_device_that_failed_again(make_peer, room_number):
    talker = make_peer("talker", room_number, tone="tone:880")
    box = make_peer("box", room_number, tone=None, speaker_hold_s=HOLD)
    box.speaker_path.mkdir()  # the speaker cannot open its file: the device "fails"
    talker.call(lambda s: s.join())
    box.call(lambda s: s.join())
    wait_state(box, "failed", timeout=20)
    box.speaker_path.rmdir()  # the device is back...
    time.sleep(1.0)
    assert box.session.speaker_state == "failed"  # ...but nothing tried it yet
    box.call(lambda s: s.set_speaker(False))
    box.call(lambda s: s.set_speaker(True))  # a person switches it on: tried again
    wait_state(box, "playing", timeout=3.0)
    wait_tone(box.speaker_path, 880, timeout=5)

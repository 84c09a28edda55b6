"""In a video room a box tells the others when its mic is off (``edgeroom.mic``): their
rosters show ``mic_off``, for members already there and for one who joins later. The
server is not told (a video room has no such state), so a claim never silences a voice:
a member who claims its mic is off while it sends a tone is still heard.

Peers on a real Janus; the box whose mic goes off runs the same room session as the
appliance.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from services.room.messages import CMD_MIC
from tests.harness.peers import RoomPeer
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]


def mic_off(peer: RoomPeer, member_id: str) -> bool | None:
    member = peer.session.roster.get(member_id)
    return None if member is None else member.mic_off


def wait_mic_off(peer: RoomPeer, member_id: str, off: bool) -> None:
    peer.wait_for(lambda: mic_off(peer, member_id) is off, timeout=15,
                  what=f"{member_id} shown with its mic {'off' if off else 'on'}")


def talker_and_ear(make_peer: Any, room: int, hz: int) -> tuple[RoomPeer, RoomPeer, str]:
    """A member sending a tone and one hearing it, both in the room."""
    talker = make_peer("talker", room, tone=f"tone:{hz}")
    ear = make_peer("ear", room, tone=None)
    talker.call(lambda s: s.join())
    ear.call(lambda s: s.join())
    wait_tone(ear.speaker_path, hz)
    return talker, ear, talker.session.local_id


def test_a_box_in_a_video_room_tells_when_its_mic_is_off(make_peer, room_number):
    box, ear, box_id = talker_and_ear(make_peer, room_number, 440)
    wait_mic_off(ear, box_id, False)

    box.call(lambda s: s.set_mic(False))
    wait_mic_off(ear, box_id, True)
    updated: list[dict[str, Any]] = ear.names("member-updated")
    assert any(d["id"] == box_id and d["mic_off"] for d in updated), updated
    box.call(lambda s: s.set_mic(True))
    wait_mic_off(ear, box_id, False)
    wait_tone(ear.speaker_path, 440)

    # Deaf sends nothing either; a member who comes later learns it too.
    box.call(lambda s: s.set_deaf(True))
    wait_mic_off(ear, box_id, True)
    late = make_peer("late", room_number, tone=None)
    late.call(lambda s: s.join())
    late.wait_for(lambda: box_id in late.session.roster, what="the box in the roster")
    wait_mic_off(late, box_id, True)
    box.call(lambda s: s.set_deaf(False))
    wait_mic_off(late, box_id, False)
    wait_mic_off(ear, box_id, False)
    # Told once per change (off, on, off, on), never repeated: the channel is rate
    # limited for everyone.
    told = [d["payload"]["off"] for d in ear.names("custom-message")
            if d.get("cmd") == CMD_MIC and d["from"] == box_id and not d.get("history")]
    assert told[-4:] == [True, False, True, False], told
    assert all(a != b for a, b in pairwise(told)), told


def test_a_claim_that_the_mic_is_off_does_not_silence_a_voice(make_peer, room_number):
    talker, ear, talker_id = talker_and_ear(make_peer, room_number, 660)
    # The talker's own channel claims its mic is off while its tone goes on.
    talker.call(lambda s: s.post_custom(CMD_MIC, {"off": True}))
    wait_mic_off(ear, talker_id, True)
    wait_tone(ear.speaker_path, 660, timeout=5)
    assert ear.session.speaker_state == "playing"


def test_a_mic_switched_again_and_again_ends_in_the_right_state(make_peer, room_number):
    box, ear, box_id = talker_and_ear(make_peer, room_number, 440)

    async def press(session: Any) -> None:
        for i in range(601):  # more than the message queue holds: ends off
            await session.set_mic(i % 2 == 1)

    box.call(press)
    assert box.session.controls.mic_enabled is False
    wait_mic_off(ear, box_id, True)
    box.call(lambda s: s.set_mic(True))
    wait_mic_off(ear, box_id, False)

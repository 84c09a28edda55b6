"""Voice room (AudioBridge): the server mixes; everyone hears everyone else, not itself."""

from __future__ import annotations

import pytest

from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]

TONES = {"a": 440, "b": 660, "c": 1000}


def test_three_boxes_hear_the_other_two(make_peer, room_number):
    peers = {name: make_peer(name, room_number, tone=f"tone:{hz}", backend="audiobridge")
             for name, hz in TONES.items()}
    for p in peers.values():
        p.call(lambda s: s.join())
    for name, p in peers.items():
        for other, hz in TONES.items():
            if other != name:
                wait_tone(p.speaker_path, hz, threshold=0.05)
        wait_tone(p.speaker_path, TONES[name], present=False, threshold=0.05)
    a = peers["a"]
    ids = {p.session.local_id for n, p in peers.items() if n != "a"}
    a.wait_for(lambda: {m.id for m in a.session.members()} == ids, what="roster of a")
    # talking comes from the server's audio levels
    b_id = peers["b"].session.local_id
    a.wait_event("talking", lambda d: d["id"] == b_id and d["talking"])


def test_mute_is_visible_to_members_and_moderation(make_peer, room_number):
    from tests.harness.fixtures import ROOM_SECRET

    a = make_peer("a", room_number, tone="tone:440", backend="audiobridge",
                  secret=ROOM_SECRET)
    b = make_peer("b", room_number, tone="tone:660", backend="audiobridge")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    b_id = b.session.local_id
    wait_tone(a.speaker_path, 660)
    b.call(lambda s: s.set_mic(False))
    a.wait_for(lambda: a.session.roster.get(b_id).audio_muted, what="B shown muted")
    wait_tone(a.speaker_path, 660, present=False)
    b.call(lambda s: s.set_mic(True))
    wait_tone(a.speaker_path, 660)

    a.call(lambda s: s.moderate(b_id, True))
    wait_tone(a.speaker_path, 660, present=False)
    assert b.wait_event("moderated")["muted"] is True


def test_listener_in_voice_room_is_muted(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440", backend="audiobridge")
    listener = make_peer("l", room_number, tone="tone:660", backend="audiobridge",
                         role="listener")
    a.call(lambda s: s.join())
    listener.call(lambda s: s.join())
    wait_tone(listener.speaker_path, 440)
    l_id = listener.session.local_id
    a.wait_for(lambda: a.session.roster.get(l_id) and a.session.roster.get(l_id).audio_muted,
               what="listener shown muted")
    wait_tone(a.speaker_path, 660, present=False, timeout=3)
    assert listener.session.mic.stats["frames"] == 0
    listener.call(lambda s: s.set_role("publisher"))
    wait_tone(a.speaker_path, 660)

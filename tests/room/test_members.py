"""Messages, local mutes, moderation, kick and roles in a video room."""

from __future__ import annotations

import time

import pytest

from services.room.api import NotInRoom, RoomError, RoomState
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]


def test_text_custom_and_hand_round_trip(make_peer, room_number):
    a = make_peer("a", room_number, tone=None)
    b = make_peer("b", room_number, tone=None)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    a_id, b_id = a.session.local_id, b.session.local_id
    a.wait_for(lambda: b_id in {m.id for m in a.session.members()}, what="B joined")

    a.call(lambda s: s.send_text("hello room"))
    msg = b.wait_event("message")
    assert msg == {"from": a_id, "display": "a", "text": "hello room", "to": None}

    b.call(lambda s: s.send_custom("like", {"n": 3}, "low"))
    b.call(lambda s: s.send_custom("preset", {"id": 7, "name": "wide"}))
    custom = a.wait_event("custom-message", lambda d: d["cmd"] == "preset")
    assert custom == {"from": b_id, "display": "b", "cmd": "preset",
                      "payload": {"id": 7, "name": "wide"}}
    assert a.wait_event("custom-message", lambda d: d["cmd"] == "like")["payload"] == {"n": 3}

    # private message: only the addressee gets it
    c = make_peer("c", room_number, tone=None)
    c.call(lambda s: s.join())
    a.call(lambda s: s.send_text("psst", to=b_id))
    assert b.wait_event("message", lambda d: d["text"] == "psst")["to"] == b_id
    time.sleep(0.5)
    assert not [m for m in c.names("message") if m["text"] == "psst"]

    a.call(lambda s: s.raise_hand(True))
    assert b.wait_event("hand", lambda d: d["id"] == a_id) == {"id": a_id, "raised": True}
    assert a.names("hand")[-1] == {"id": "local", "raised": True}
    b.wait_for(lambda: b.session.roster.get(a_id).hand_raised, what="hand in roster")


def test_rate_limit_merges_low_priority(make_peer, room_number):
    a = make_peer("a", room_number, tone=None)
    b = make_peer("b", room_number, tone=None)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())

    async def flood(s):
        for i in range(40):
            await s.send_custom("level", {"i": i}, "low")
        for i in range(30):
            await s.send_custom("chat", {"i": i}, "high")

    a.call(flood)
    got = b.wait_for(lambda: [d for d in b.names("custom-message") if d["cmd"] == "chat"]
                     if len([d for d in b.names("custom-message") if d["cmd"] == "chat"]) == 30
                     else None, timeout=15, what="30 high-priority messages")
    assert [d["payload"]["i"] for d in got] == list(range(30))  # none lost, in order
    b.wait_event("custom-message", lambda d: d["cmd"] == "level" and d["payload"]["i"] == 39)
    levels = [d["payload"]["i"] for d in b.names("custom-message") if d["cmd"] == "level"]
    assert len(levels) < 40  # merged, newest kept
    assert a.session.limiter.merged > 0


def test_local_mute_of_one_member_and_all(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440")
    b = make_peer("b", room_number, tone="tone:880")
    c = make_peer("c", room_number, tone=None)
    for p in (a, b, c):
        p.call(lambda s: s.join())
    wait_tone(c.speaker_path, 440)
    wait_tone(c.speaker_path, 880)
    a_id = a.session.local_id

    c.call(lambda s: s.mute_member(a_id, True))
    wait_tone(c.speaker_path, 440, present=False)
    wait_tone(c.speaker_path, 880)  # B still plays
    assert c.session.roster.get(a_id).locally_muted
    assert a_id in c.session.controls.muted_members
    # A itself is not affected: B still hears A
    wait_tone(b.speaker_path, 440)

    c.call(lambda s: s.mute_member(a_id, False))
    wait_tone(c.speaker_path, 440)
    c.call(lambda s: s.mute_all(True))
    wait_tone(c.speaker_path, 440, present=False)
    wait_tone(c.speaker_path, 880, present=False)
    c.call(lambda s: s.mute_all(False))
    wait_tone(c.speaker_path, 880)


def test_mic_off_volume_and_deaf(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440")
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440)
    a.call(lambda s: s.set_mic(False))
    wait_tone(b.speaker_path, 440, present=False)
    a.call(lambda s: s.set_mic(True))
    wait_tone(b.speaker_path, 440)
    a.call(lambda s: s.set_deaf(True))
    wait_tone(b.speaker_path, 440, present=False)  # deaf also mutes the mic
    wait_tone(a.speaker_path, 880, present=False)  # and hears nothing
    a.call(lambda s: s.set_deaf(False))
    wait_tone(a.speaker_path, 880)
    with pytest.raises(RoomError):
        a.call(lambda s: s.set_mic_volume(101))
    assert a.names("controls")[-1]["deaf"] is False


def test_moderator_mutes_and_kicks(make_peer, room_number):
    from tests.harness.fixtures import ROOM_SECRET

    mod = make_peer("mod", room_number, tone=None, secret=ROOM_SECRET)
    b = make_peer("b", room_number, tone="tone:880")
    plain = make_peer("p", room_number, tone=None)
    for p in (mod, b, plain):
        p.call(lambda s: s.join())
    b_id = b.session.local_id
    wait_tone(mod.speaker_path, 880)

    # without the secret, moderation is refused clearly
    plain.wait_for(lambda: b_id in plain.session.roster, what="B in roster")
    with pytest.raises(RoomError) as err:
        plain.call(lambda s: s.moderate(b_id, True))
    assert err.value.code == "NO_SECRET"

    mod.call(lambda s: s.moderate(b_id, True))
    wait_tone(mod.speaker_path, 880, present=False)
    wait_tone(plain.speaker_path, 880, present=False)
    assert b.wait_event("moderated") == {"kind": "audio", "muted": True}
    mod.call(lambda s: s.moderate(b_id, False))
    wait_tone(plain.speaker_path, 880)

    mod.call(lambda s: s.kick(b_id))
    assert b.wait_event("kicked")["reason"]
    b.wait_for(lambda: b.session.state == RoomState.IDLE, what="B idle after kick")
    mod.wait_event("member-left", lambda d: d["id"] == b_id)
    with pytest.raises(NotInRoom):
        b.call(lambda s: s.send_text("still here?"))


def test_listener_receives_publishes_nothing_then_switches(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440")
    listener = make_peer("l", room_number, tone="tone:660", role="listener")
    a.call(lambda s: s.join())
    listener.call(lambda s: s.join())
    l_id = listener.session.local_id
    wait_tone(listener.speaker_path, 440)
    member = a.wait_for(lambda: a.session.roster.get(l_id), what="listener in A's roster")
    assert member.role == "listener" and not member.has_audio
    time.sleep(1.0)
    assert listener.session.mic.stats["frames"] == 0  # its mic was never read
    wait_tone(a.speaker_path, 660, present=False, timeout=2)
    assert not [pc for label, pc in listener.session._backend.peer_connections().items()
                if label == "publisher"]

    listener.call(lambda s: s.set_role("publisher"))
    wait_tone(a.speaker_path, 660)
    a.wait_for(lambda: a.session.roster.get(l_id).has_audio, what="listener now publishes")
    listener.call(lambda s: s.set_role("listener"))
    wait_tone(a.speaker_path, 660, present=False)
    listener.call(lambda s: s.set_role("publisher"))  # back, once the server hung up
    wait_tone(a.speaker_path, 660)
    # The server hangs the withdrawn publisher up ("Close PC"): that is no failure, and
    # the member never left the room for its role changes.
    assert listener.names("reconnecting") == []
    assert len(listener.names("entered")) == 1


def test_member_leaves_and_comes_back(make_peer, room_number):
    a = make_peer("a", room_number, tone=None)
    b = make_peer("b", room_number, tone="tone:880")
    c = make_peer("c", room_number, tone="tone:660")
    for p in (a, b, c):
        p.call(lambda s: s.join())
    wait_tone(a.speaker_path, 660)
    c_id = c.session.local_id
    c.call(lambda s: s.leave())
    assert c.session.state == RoomState.IDLE and c.session.members() == []
    a.wait_event("member-left", lambda d: d["id"] == c_id)
    wait_tone(a.speaker_path, 660, present=False)
    wait_tone(a.speaker_path, 880)  # B is unaffected
    c.call(lambda s: s.join())
    wait_tone(a.speaker_path, 660)
    wait_tone(a.speaker_path, 880)
    assert a.session.state == RoomState.IN_ROOM
    assert len(a.names("entered")) == 1  # no reconnect was needed on A's side

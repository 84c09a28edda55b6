"""Room features on the TextRoom against a real Janus: metadata, requests to speak, the
room status, history and chat moderation, between boxes in their own namespaces."""

from __future__ import annotations

import time
from typing import Any

import pytest

from drivers.common.actions import ActionError
from services.room.feature_commands import CMD_CHAT_LOCK, CMD_STATUS, RoomFeatureSettings
from services.room.features import RoomFeatures
from services.room.signing import sign
from tests.harness.fixtures import ROOM_SECRET
from tests.harness.peers import RoomPeer
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]


def features(peer: RoomPeer, timeout: float = 30.0) -> RoomFeatures:
    """The room features on ``peer``'s session, their events recorded with the peer's."""
    f = RoomFeatures(RoomFeatureSettings(secret=peer.settings.secret,
                                         speak_timeout_s=timeout),
                     peer.session, emit=peer._record)
    peer.session.extension = f
    return f


def joined(*peers: RoomPeer) -> None:
    for p in peers:
        p.call(lambda s: s.join())
    for p in peers:
        others = {q.session.local_id for q in peers if q is not p}
        p.wait_for(lambda p=p, others=others: others <= {m.id for m in p.session.members()},
                   what="every member in the roster")


def act(peer: RoomPeer, fn: Any) -> Any:
    return peer.call(lambda s: fn())


def test_metadata_seen_by_members_and_a_late_joiner(make_peer, room_number):
    a = make_peer("a", room_number, tone=None)
    b = make_peer("b", room_number, tone=None)
    fa, fb = features(a), features(b)
    joined(a, b)
    a_id = a.session.local_id

    act(a, lambda: fa.set_meta("room", "set", {"topic": "budget", "floor": 2}))
    got = b.wait_event("room-meta", lambda d: d["meta"].get("topic") == "budget")
    assert got["meta"] == {"topic": "budget", "floor": 2} and got["by"] == a_id
    act(a, lambda: fa.set_meta("member", "set", {"seat": "front"}))
    assert b.wait_event("member-meta", lambda d: d["id"] == a_id)["meta"] == {"seat": "front"}
    act(b, lambda: fb.set_meta("room", "update", {"floor": 3}))
    a.wait_event("room-meta", lambda d: d["meta"] == {"topic": "budget", "floor": 3})
    act(b, lambda: fb.set_meta("room", "delete", keys=["topic"]))
    a.wait_event("room-meta", lambda d: d["meta"] == {"floor": 3})

    c = make_peer("c", room_number, tone=None)
    fc = features(c)
    c.call(lambda s: s.join())
    c.wait_event("room-meta", lambda d: d["meta"] == {"floor": 3})
    assert c.wait_event("member-meta", lambda d: d["id"] == a_id)["meta"] == {"seat": "front"}
    assert fc.view()["member_meta"][a_id] == {"seat": "front"}
    assert fc.view()["meta"] == {"floor": 3}

    with pytest.raises(ActionError) as exc:
        act(a, lambda: fa.set_meta("room", "set", ["not", "an", "object"]))
    assert exc.value.code == "BAD_ARGUMENT"


def test_status_and_notice_need_a_signature(make_peer, room_number):
    # Boxes hold room.secret (they check signatures with it); the forger does not.
    mod = make_peer("mod", room_number, tone=None, secret=ROOM_SECRET)
    b = make_peer("b", room_number, tone=None, secret=ROOM_SECRET)
    forger = make_peer("forger", room_number, tone=None)
    fm, fb, ff = features(mod), features(b), features(forger)
    joined(mod, b, forger)

    act(mod, lambda: fm.set_status("live", "Q&A at 3"))
    got = b.wait_event("room-meta", lambda d: d["status"] == "live")
    assert got["notice"] == "Q&A at 3" and got["status_by"] == mod.session.local_id
    with pytest.raises(ActionError) as exc:
        act(forger, lambda: ff.set_status("ended", None))
    assert exc.value.code == "NO_SECRET"

    # Unsigned, signed with a wrong secret, and a real signature sent by someone else:
    f_id = forger.session.local_id
    forger.call(lambda s: s.post_custom(CMD_STATUS, {"status": "ended", "notice": None}))
    forger.call(lambda s: s.post_custom(CMD_STATUS, sign(
        "guess", CMD_STATUS, room_number, {"status": "ended", "notice": None}, f_id)))
    stolen = sign(ROOM_SECRET, CMD_STATUS, room_number, {"status": "paused", "notice": None},
                  mod.session.local_id)
    forger.call(lambda s: s.post_custom(CMD_STATUS, stolen))
    reasons = [b.wait_event("moderation-refused", lambda d, r=r: r in d["reason"])["reason"]
               for r in ("unsigned", "bad signature", "sent by")]
    assert len(reasons) == 3
    assert fb.view()["status"] == "live"
    assert ff.view()["status"] is None  # without the secret nothing can be checked

    c = make_peer("c", room_number, tone=None, secret=ROOM_SECRET)
    fc = features(c)
    c.call(lambda s: s.join())
    c.wait_event("room-meta", lambda d: d["status"] == "live" and d["notice"] == "Q&A at 3")
    assert fc.view()["status"] == "live"


def test_request_to_speak_accepted_then_heard_then_revoked(make_peer, room_number):
    mod = make_peer("mod", room_number, tone=None, secret=ROOM_SECRET)
    lis = make_peer("lis", room_number, tone="tone:660", secret=ROOM_SECRET, role="listener")
    fm, fl = features(mod), features(lis)
    joined(mod, lis)
    l_id = lis.session.local_id
    time.sleep(1.0)
    wait_tone(mod.speaker_path, 660, present=False)  # a listener sends nothing

    result = act(lis, fl.request_speak)
    assert result["timeout_s"] == 30.0
    asked = mod.wait_event("publish-request", lambda d: d["id"] == l_id)
    assert asked["request"] == result["request"] and asked["local"] is False
    assert lis.names("publish-request")[-1]["local"] is True
    assert [r["id"] for r in fm.view()["requests"]] == [l_id]

    act(mod, lambda: fm.answer_speak(l_id, True))
    answer = lis.wait_event("publish-answer", lambda d: d["local"])
    assert answer["answer"] == "accepted" and answer["by"] == mod.session.local_id
    lis.wait_for(lambda: lis.session.controls.role == "publisher", what="publisher")
    assert lis.session.state.value == "in_room"  # switched without leaving
    wait_tone(mod.speaker_path, 660)  # and heard
    assert fm.view()["requests"] == []

    with pytest.raises(ActionError) as exc:  # a publisher has nothing to ask
        act(lis, fl.request_speak)
    assert exc.value.code == "ALREADY_PUBLISHER"

    act(mod, lambda: fm.revoke_speak(l_id))
    got = lis.wait_event("publish-answer", lambda d: d["answer"] == "revoked")
    assert got["local"] is True
    lis.wait_for(lambda: lis.session.controls.role == "listener", what="listener again")
    wait_tone(mod.speaker_path, 660, present=False)


def test_request_to_speak_rejected_and_timed_out(make_peer, room_number):
    mod = make_peer("mod", room_number, tone=None, secret=ROOM_SECRET)
    lis = make_peer("lis", room_number, tone="tone:660", secret=ROOM_SECRET, role="listener")
    fm, fl = features(mod), features(lis, timeout=1.5)
    joined(mod, lis)
    l_id = lis.session.local_id

    first = act(lis, fl.request_speak)["request"]
    mod.wait_event("publish-request", lambda d: d["request"] == first)
    act(mod, lambda: fm.answer_speak(l_id, False))
    got = lis.wait_event("publish-answer", lambda d: d["request"] == first)
    assert got["answer"] == "rejected" and got["local"] is True
    time.sleep(0.5)
    assert lis.session.controls.role == "listener"

    t0 = time.monotonic()
    second = act(lis, fl.request_speak)
    assert second["timeout_s"] == 1.5 and second["request"] != first
    mod.wait_event("publish-request", lambda d: d["request"] == second["request"])
    mine = lis.wait_event("publish-answer", lambda d: d["request"] == second["request"])
    waited = time.monotonic() - t0
    theirs = mod.wait_event("publish-answer", lambda d: d["request"] == second["request"])
    assert mine["answer"] == theirs["answer"] == "timeout"
    assert 1.4 <= waited < 5.0, waited
    with pytest.raises(ActionError) as exc:  # too late to answer
        act(mod, lambda: fm.answer_speak(l_id, True))
    assert exc.value.code == "NO_SUCH_REQUEST"
    time.sleep(0.5)
    assert lis.session.controls.role == "listener"
    assert fl.view()["own_request"] is None

    # A forged acceptance (no secret) of a fresh request does not make it a publisher.
    third = act(lis, fl.request_speak)["request"]
    guest = make_peer("guest", room_number, tone=None)
    guest.call(lambda s: s.join())
    guest.call(lambda s: s.post_custom("edgeroom.speak-answer", sign(
        "guess", "edgeroom.speak-answer", room_number,
        {"id": l_id, "request": third, "accepted": True}, s.local_id)))
    lis.wait_event("moderation-refused", lambda d: d["cmd"] == "edgeroom.speak-answer")
    assert lis.wait_event("publish-answer", lambda d: d["request"] == third)["answer"] \
        == "timeout"
    assert lis.session.controls.role == "listener"


def test_late_joiner_receives_history(make_peer, room_number):
    a = make_peer("a", room_number, tone=None)
    features(a)
    a.call(lambda s: s.join())
    for i in range(3):
        a.call(lambda s, i=i: s.send_text(f"earlier {i}"))
    a.call(lambda s: s.send_custom("preset", {"id": 4}))
    time.sleep(1.0)  # the server has them all

    c = make_peer("c", room_number, tone=None)
    features(c)
    c.call(lambda s: s.join())
    c.wait_event("message", lambda d: d["text"] == "earlier 2")
    old = [m for m in c.names("message") if m.get("history")]
    assert [m["text"] for m in old][-3:] == ["earlier 0", "earlier 1", "earlier 2"]
    assert all(m["from"] == a.session.local_id and m["date"] for m in old)
    preset = c.wait_event("custom-message", lambda d: d["cmd"] == "preset")
    assert preset["history"] is True and preset["payload"] == {"id": 4}
    # ... and what is said after it joined arrives live.
    a.call(lambda s: s.send_text("now"))
    live = c.wait_event("message", lambda d: d["text"] == "now")
    assert "history" not in live


def test_chat_moderation_signed_only(make_peer, room_number):
    mod = make_peer("mod", room_number, tone=None, secret=ROOM_SECRET)
    b = make_peer("b", room_number, tone=None, secret=ROOM_SECRET)
    c = make_peer("c", room_number, tone=None, secret=ROOM_SECRET)
    guest = make_peer("guest", room_number, tone=None)
    fm, fb, fc, fg = features(mod), features(b), features(c), features(guest)
    joined(mod, b, c, guest)
    b_id, g_id = b.session.local_id, guest.session.local_id

    act(mod, lambda: fm.chat_lock(True))
    c.wait_event("chat-moderation", lambda d: d["kind"] == "lock" and d["locked"])
    assert act(guest, lambda: fg.outgoing_text("hi", None)) is False  # it cannot tell
    # A client that ignores the lock can still post; honouring boxes drop it.
    guest.call(lambda s: s.send_text("from a guest while locked"))
    assert act(mod, lambda: fm.outgoing_text("moderator speaking", None)) is True
    got = c.wait_event("message", lambda d: d["text"] == "moderator speaking")
    assert got["moderator"] is True and got["from"] == mod.session.local_id
    time.sleep(0.5)
    assert not [m for m in c.names("message") if m["text"] == "from a guest while locked"]
    # A guest's forged unlock is ignored; the moderator's unlock is honoured.
    guest.call(lambda s: s.post_custom(CMD_CHAT_LOCK, {"locked": False}))
    c.wait_event("moderation-refused", lambda d: d["from"] == g_id)
    assert fc.view()["chat"]["locked"] is True
    act(mod, lambda: fm.chat_lock(False))
    c.wait_event("chat-moderation", lambda d: d["kind"] == "lock" and not d["locked"])

    act(mod, lambda: fm.chat_mute(b_id, True))
    b.wait_event("chat-moderation", lambda d: d["kind"] == "mute" and d["local"])
    with pytest.raises(ActionError) as exc:
        act(b, lambda: fb.outgoing_text("muted?", None))
    assert exc.value.code == "CHAT_MUTED"
    b.call(lambda s: s.send_text("b ignores its mute"))
    guest.call(lambda s: s.send_text("guest after unlock"))
    c.wait_event("message", lambda d: d["text"] == "guest after unlock")
    time.sleep(0.5)
    assert not [m for m in c.names("message") if m["text"] == "b ignores its mute"]
    assert fc.view()["chat"]["muted"] == [b_id]

    # A late joiner takes the signed moderation state from the others.
    late = make_peer("late", room_number, tone=None, secret=ROOM_SECRET)
    fl = features(late)
    late.call(lambda s: s.join())
    late.wait_for(lambda: fl.view()["chat"]["muted"] == [b_id], what="mute state")

"""Room features on the TextRoom against a real Janus: metadata, requests to speak, the
room status, history and chat moderation, between boxes in their own namespaces."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.actions import ActionError
from services.room.features import (
    CMD_CHAT_LOCK,
    CMD_STATUS,
    RoomFeatures,
    RoomFeatureSettings,
)
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

"""Guest links (signed, expiring, revocable) and the allow-list of a guest's signalling."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from services.guest.links import KEY_FILE, LIST_FILE, GuestLinkError, GuestLinks
from services.guest.policy import AUDIOBRIDGE, TEXTROOM, VIDEOROOM, GuestPolicy, PolicyError
from tests.harness.clock import Clock


def test_a_link_works_until_it_expires_or_is_revoked(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    links = GuestLinks(tmp_path, clock)
    link, token = links.create(3600, "front desk")
    assert links.verify(token).id == link.id
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    # a new process (the appliance restarted) still knows it
    assert GuestLinks(tmp_path, clock).verify(token).label == "front desk"
    clock.now += 3601
    with pytest.raises(GuestLinkError) as exc:
        links.verify(token)
    assert exc.value.code == "LINK_EXPIRED"
    clock.now -= 3601
    other, other_token = links.create(600)
    links.revoke(other.id)
    with pytest.raises(GuestLinkError) as exc:
        links.verify(other_token)
    assert exc.value.code == "LINK_REVOKED"
    assert [item.revoked for item in links.list()] == [False, True]
    assert links.verify(token)  # revoking one leaves the others


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # another signature
    lambda t: t.split(".")[0] + "." + str(int(t.split(".")[1]) + 99999) + "." + t.split(".")[2],
    lambda t: "x" + t,  # another id
    lambda t: "",
    lambda t: "a.b",
    lambda t: t + ".x",
])
def test_a_forged_link_is_refused(tmp_path: Path, mangle: Any) -> None:
    links = GuestLinks(tmp_path, Clock(1_800_000_000.0))
    _, token = links.create(3600)
    with pytest.raises(GuestLinkError) as exc:
        links.verify(mangle(token))
    assert exc.value.code in ("BAD_LINK", "LINK_REVOKED")


def test_another_box_key_or_a_reset_list_refuses_old_links(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    _, token = GuestLinks(tmp_path / "a", clock).create(3600)
    with pytest.raises(GuestLinkError):
        GuestLinks(tmp_path / "b", clock).verify(token)
    (tmp_path / "a" / LIST_FILE).write_text("not json")
    with pytest.raises(GuestLinkError) as exc:
        GuestLinks(tmp_path / "a", clock).verify(token)
    assert exc.value.code == "LINK_REVOKED"


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    links = GuestLinks(tmp_path, Clock(1_800_000_000.0))
    with pytest.raises(GuestLinkError, match="ttl_seconds must be 60-"):
        links.create(5)
    with pytest.raises(GuestLinkError, match="label"):
        links.create(600, "x" * 100)
    with pytest.raises(GuestLinkError) as exc:
        links.revoke("nope")
    assert exc.value.code == "NO_SUCH_GUEST_LINK"


def _session(policy: GuestPolicy) -> tuple[int, dict[str, int]]:
    """Create a session and attach one handle per plugin, as Janus would answer."""
    policy.check({"janus": "create", "transaction": "c"})
    policy.reply({"janus": "success", "transaction": "c", "data": {"id": 77}})
    handles = {}
    for n, plugin in enumerate((VIDEOROOM, AUDIOBRIDGE, TEXTROOM)):
        policy.check({"janus": "attach", "plugin": plugin, "session_id": 77,
                      "transaction": f"a{n}"})
        policy.reply({"janus": "success", "session_id": 77, "transaction": f"a{n}",
                      "data": {"id": 100 + n}})
        handles[plugin] = 100 + n
    return 77, handles


def test_a_member_s_requests_pass_with_the_box_s_secrets() -> None:
    policy = GuestPolicy(room=1234, pin="4321", api_secret="s3", token=None,
                         display_prefix="guest: ")
    session, h = _session(policy)
    out = policy.check({"janus": "message", "session_id": session, "handle_id": h[VIDEOROOM],
                        "transaction": "j", "apisecret": "guessed",
                        "body": {"request": "join", "ptype": "publisher", "display": "Ann",
                                 "id": 1}})
    assert out["apisecret"] == "s3"
    assert out["body"] == {"request": "join", "ptype": "publisher", "display": "guest: Ann",
                           "room": 1234, "pin": "4321"}
    for body in ({"request": "configure", "audio": True}, {"request": "start"},
                 {"request": "join", "ptype": "subscriber", "streams": [{"feed": 5}]}):
        policy.check({"janus": "message", "session_id": session, "handle_id": h[VIDEOROOM],
                      "transaction": "m", "body": body})
    policy.check({"janus": "message", "session_id": session, "handle_id": h[TEXTROOM],
                  "transaction": "t", "body": {"request": "setup"}})
    policy.check({"janus": "trickle", "session_id": session, "handle_id": h[AUDIOBRIDGE],
                  "transaction": "i", "candidate": {"completed": True}})
    policy.check({"janus": "keepalive", "session_id": session, "transaction": "k"})


@pytest.mark.parametrize("message, reason", [
    ({"janus": "message", "handle_id": 100, "body": {"request": "create", "room": 9}},
     "not open to guests"),
    ({"janus": "message", "handle_id": 100, "body": {"request": "destroy", "room": 1234}},
     "not open to guests"),
    ({"janus": "message", "handle_id": 100, "body": {"request": "kick", "id": 5}},
     "not open to guests"),
    ({"janus": "message", "handle_id": 100, "body": {"request": "moderate", "id": 5}},
     "not open to guests"),
    ({"janus": "message", "handle_id": 100, "body": {"request": "rtp_forward"}},
     "not open to guests"),
    ({"janus": "message", "handle_id": 100,
      "body": {"request": "join", "ptype": "publisher", "room": 999}}, "only the box's room"),
    ({"janus": "message", "handle_id": 100,
      "body": {"request": "configure", "secret": "x"}}, "not for guests"),
    ({"janus": "message", "handle_id": 555, "body": {"request": "start"}},
     "not one of this guest's handles"),
    ({"janus": "attach", "plugin": "janus.plugin.streaming"}, "not open to guests"),
    ({"janus": "message", "handle_id": 102, "body": {"request": "kick"}},
     "not open to guests"),
    ({"janus": "create"}, "one Janus session"),
    ({"janus": "claim"}, "not a request a room member makes"),
    ({"janus": "keepalive", "session_id": 1}, "not this guest's session"),
])
def test_everything_else_is_refused(message: dict[str, Any], reason: str) -> None:
    policy = GuestPolicy(room=1234)
    session, _ = _session(policy)
    message = {"session_id": session, "transaction": "x", **message}
    with pytest.raises(PolicyError, match=reason):
        policy.check(message)


def test_nothing_before_a_session() -> None:
    policy = GuestPolicy(room=1)
    with pytest.raises(PolicyError, match="not this guest's session"):
        policy.check({"janus": "attach", "plugin": VIDEOROOM, "transaction": "a",
                      "session_id": 5})
    with pytest.raises(PolicyError, match="JSON object"):
        policy.check(["create"])

"""Signed moderation commands: what is honoured and what is refused (no network)."""

from __future__ import annotations

import hashlib
import hmac
import json

from services.room.signing import MAX_SKEW_MS, Verifier, canonical, sign

NOW = 1_800_000_000_000


def verifier(secret: str | None = "s3cret", room: int | str = 1234) -> Verifier:
    return Verifier(secret, room, clock_ms=lambda: NOW)


def test_the_signature_is_an_hmac_of_the_documented_canonical_form() -> None:
    payload = sign("s3cret", "edgeroom.room-status", 1234, {"status": "live", "notice": "é"},
                   by="42", now_ms=NOW)
    body = {k: v for k, v in payload.items() if k != "sig"}
    text = json.dumps({**body, "cmd": "edgeroom.room-status", "room": 1234}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    assert canonical("edgeroom.room-status", 1234, payload) == text.encode("utf-8")
    assert '"notice":"é"' in text  # non-ASCII kept as is
    expected = hmac.new(b"s3cret", text.encode("utf-8"), hashlib.sha256).hexdigest()
    assert payload["sig"] == expected
    assert payload["ts"] == NOW and payload["by"] == "42" and len(payload["nonce"]) == 16


def test_a_fresh_authentic_command_is_honoured_once() -> None:
    v = verifier()
    payload = sign("s3cret", "edgeroom.chat-lock", 1234, {"locked": True}, "42", now_ms=NOW)
    assert v.live("edgeroom.chat-lock", payload, "42") is None
    assert v.live("edgeroom.chat-lock", payload, "42") == "replayed"
    assert v.refused == 1


def test_forged_and_stale_commands_are_refused() -> None:
    v = verifier()
    good = sign("s3cret", "edgeroom.chat-lock", 1234, {"locked": True}, "42", now_ms=NOW)
    cases = {
        "unsigned": {"locked": True},
        "bad signature": sign("guess", "edgeroom.chat-lock", 1234, {"locked": True}, "42",
                              now_ms=NOW),
    }
    for reason, payload in cases.items():
        assert v.live("edgeroom.chat-lock", payload, "42") == reason
    # changed after signing, another command, another room
    assert v.live("edgeroom.chat-lock", {**good, "locked": False}, "42") == "bad signature"
    assert v.live("edgeroom.room-status", good, "42") == "bad signature"
    assert verifier(room=99).live("edgeroom.chat-lock", good, "42") == "bad signature"
    # sent by a member other than its signer (a copy re-sent by someone else)
    assert "sent by" in (v.live("edgeroom.chat-lock", good, "7") or "")
    old = sign("s3cret", "edgeroom.chat-lock", 1234, {"locked": True}, "42",
               now_ms=NOW - MAX_SKEW_MS - 1)
    assert v.live("edgeroom.chat-lock", old, "42") == \
        "too old (or the clocks disagree by over a minute)"
    assert v.live("edgeroom.chat-lock", "not a dict", "42") == "unsigned"
    # a box without the secret cannot check anything, so honours nothing
    assert verifier(secret=None).live("edgeroom.chat-lock", good, "42") == \
        "no room.secret here to check it with"
    # ... and the untouched command is still good (none of the above spent its nonce)
    assert v.live("edgeroom.chat-lock", good, "42") is None


def test_forwarded_state_is_checked_for_authenticity_only() -> None:
    v = verifier()
    old = sign("s3cret", "edgeroom.room-status", 1234, {"status": "ended", "notice": None},
               "42", now_ms=NOW - 3_600_000)
    assert v.authentic("edgeroom.room-status", old)
    assert not v.authentic("edgeroom.room-status", {**old, "status": "live"})
    assert not v.authentic("edgeroom.room-status", {**old, "ts": "yesterday"})


def test_a_room_named_by_its_number_signs_as_that_number() -> None:
    # a box with room "1234" (a server with string ids names it so) and a box with 1234
    # are in one room: their signatures agree; a named room signs with its name
    payload = sign("s3cret", "edgeroom.chat-lock", "1234", {"locked": True}, "42", now_ms=NOW)
    assert verifier(room=1234).live("edgeroom.chat-lock", payload, "42") is None
    assert canonical("c", "1234", {}) == canonical("c", 1234, {}) == b'{"cmd":"c","room":1234}'
    assert canonical("c", "lobby", {}) == b'{"cmd":"c","room":"lobby"}'

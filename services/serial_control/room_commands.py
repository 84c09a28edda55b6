"""Serial commands for the room features on the message channel (docs/serial-protocol.md):
metadata, requests to speak, the room status and notice, chat moderation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.serial_control.commands import COMMANDS, Line, _word, command, words
from services.serial_control.format import ProtocolError, ok, quote

META_USAGE = "META ROOM|MEMBER SET|UPDATE json | META ROOM|MEMBER DELETE [key ...]"
SPEAK_USAGE = "SPEAK REQUEST|CANCEL | SPEAK ACCEPT|REJECT|REVOKE id"
CHAT_USAGE = "CHAT MUTE id ON|OFF | CHAT LOCK ON|OFF"


@command("META", META_USAGE, 2, None)
async def _meta(s: Line, args: list[str], rest: str) -> list[str]:
    scope = _word(args, 0, words("meta", "scope"), META_USAGE)
    op = _word(args, 1, words("meta", "op"), META_USAGE)
    params: dict[str, Any] = {"scope": scope.lower(), "op": op.lower()}
    if op == "DELETE":
        if len(args) > 2:
            params["keys"] = args[2:]
    elif len(args) > 2:
        try:
            params["meta"] = json.loads(rest.split(None, 2)[2])
        except ValueError:
            raise ProtocolError("BAD_ARGUMENT", "the metadata must be a JSON object "
                                                '(e.g. META ROOM SET {"topic": "budget"})'
                                ) from None
    result = await s.act("meta", params)
    return [ok("META", scope, quote(json.dumps(result.get("meta"), separators=(",", ":"))))]


@command("META?", "META?")
async def _meta_q(s: Line, args: list[str], rest: str) -> list[str]:
    view: Mapping[str, Any] = s.status().get("room_features") or {}
    if not view:
        raise ProtocolError("UNAVAILABLE", "the room client is not running")
    return [ok("META", data={
        "status": view.get("status"), "notice": view.get("notice"),
        "meta": json.dumps(view.get("meta") or {}, separators=(",", ":")),
        "requests": [r.get("id") for r in view.get("requests") or []],
        "chat_locked": (view.get("chat") or {}).get("locked")})]


@command("SPEAK", SPEAK_USAGE, 1, 2)
async def _speak(s: Line, args: list[str], rest: str) -> list[str]:
    verb = _word(args, 0, ("REQUEST", "CANCEL", "ACCEPT", "REJECT", "REVOKE"), SPEAK_USAGE)
    if verb in ("REQUEST", "CANCEL"):
        if len(args) != 1:
            raise ProtocolError("BAD_ARGUMENT", f"usage: {SPEAK_USAGE}")
        result = await s.act("speak", {"state": verb.lower()})
        return [ok("SPEAK", verb, data=result)]
    if len(args) != 2:
        raise ProtocolError("BAD_ARGUMENT", f"usage: SPEAK {verb} id")
    if verb == "REVOKE":
        await s.act("speak_revoke", {"id": args[1]})
    else:
        await s.act("speak_answer", {"id": args[1],
                                     "answer": "accept" if verb == "ACCEPT" else "reject"})
    return [ok("SPEAK", verb, quote(args[1]))]


@command("ROOMSTATUS", "ROOMSTATUS TO-BE-STARTED|LIVE|PAUSED|ENDED", 1, 1)
async def _room_status(s: Line, args: list[str], rest: str) -> list[str]:
    status = _word(args, 0, words("room_status", "status"), COMMANDS["ROOMSTATUS"].usage)
    result = await s.act("room_status", {"status": status.lower()})
    return [ok("ROOMSTATUS", str(result.get("status")).upper())]


@command("NOTICE", "NOTICE text (NOTICE - clears it)", 1, None)
async def _notice(s: Line, args: list[str], rest: str) -> list[str]:
    result = await s.act("room_notice", {"notice": rest})
    return [ok("NOTICE", quote(result.get("notice") or "-"))]


@command("CHAT", CHAT_USAGE, 2, 3)
async def _chat(s: Line, args: list[str], rest: str) -> list[str]:
    verb = _word(args, 0, ("MUTE", "LOCK"), CHAT_USAGE)
    if verb == "LOCK":
        if len(args) != 2:
            raise ProtocolError("BAD_ARGUMENT", "usage: CHAT LOCK ON|OFF")
        state = _word(args, 1, words("chat_lock", "state"), "CHAT LOCK ON|OFF")
        await s.act("chat_lock", {"state": state.lower()})
        return [ok("CHAT", "LOCK", state)]
    state = _word(args, 2, words("chat_mute", "state"), "CHAT MUTE id ON|OFF")
    await s.act("chat_mute", {"id": args[1], "state": state.lower()})
    return [ok("CHAT", "MUTE", quote(args[1]), state)]

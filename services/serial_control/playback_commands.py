"""Serial commands of playbacks and the input sensitivity (registered in ``COMMANDS``).

``PLAY [ROOM|SPEAKER|BOTH] FILE name | URL url | TEXT words...`` starts a playback,
``PLAYBACK id PAUSE|RESUME|VOLUME n`` changes one, ``STOPPLAY id|ALL`` stops one or all,
``PLAYBACKS?`` lists them; ``SENSITIVITY n`` and ``SENSITIVITY?``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.common.actions import ACTIONS
from services.serial_control.commands import COMMANDS, Line, _int, _word, command, words
from services.serial_control.format import ProtocolError, ok, pairs, quote

PLAY_USAGE = "PLAY [ROOM|SPEAKER|BOTH] FILE name | URL url | TEXT words..."
KINDS = ("FILE", "URL", "TEXT")


def _playbacks(s: Line) -> list[Mapping[str, Any]]:
    listed = s.status().get("playbacks")
    return list(listed) if isinstance(listed, list) else []


@command("PLAY", PLAY_USAGE, 2, None)
async def _play(s: Line, args: list[str], rest: str) -> list[str]:
    params: dict[str, Any] = {}
    if args[0].upper() not in KINDS:  # a destination first (default: the room)
        where = _word(args, 0, words("play", "destination"), PLAY_USAGE)
        params["destination"] = where.lower()
        args = args[1:]
        rest = rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
    if len(args) < 2:
        raise ProtocolError("BAD_ARGUMENT", f"usage: {PLAY_USAGE}")
    kind = _word(args, 0, KINDS, PLAY_USAGE)
    if kind == "TEXT":
        value = rest.split(None, 1)[1]
    elif len(args) != 2:
        raise ProtocolError("BAD_ARGUMENT", f"usage: {PLAY_USAGE} (a {kind.lower()} is one "
                                            "word)")
    else:
        value = args[1]
    params[kind.lower()] = value
    result = await s.act("play", params)
    return [ok("PLAY", quote(str(result.get("id"))), data={
        k: result.get(k) for k in ("kind", "destination", "volume", "state")})]


@command("PLAYBACK", "PLAYBACK id PAUSE|RESUME|VOLUME n", 2, 3)
async def _playback(s: Line, args: list[str], rest: str) -> list[str]:
    usage = COMMANDS["PLAYBACK"].usage
    op = _word(args, 1, ("PAUSE", "RESUME", "VOLUME"), usage)
    params: dict[str, Any] = {"id": args[0]}
    if op == "VOLUME":
        if len(args) != 3:
            raise ProtocolError("BAD_ARGUMENT", f"usage: {usage}")
        params["volume"] = _int(args[2], "volume", ACTIONS["playback"].arg("volume"))
    elif len(args) != 2:
        raise ProtocolError("BAD_ARGUMENT", f"usage: {usage}")
    else:
        params["op"] = op.lower()
    result = await s.act("playback", params)
    return [ok("PLAYBACK", quote(args[0]), data={"state": result.get("state"),
                                                  "volume": result.get("volume")})]


@command("STOPPLAY", "STOPPLAY id|ALL", 1, 1)
async def _stopplay(s: Line, args: list[str], rest: str) -> list[str]:
    target = args[0]
    ids = ([str(p.get("id")) for p in _playbacks(s)] if target.upper() == "ALL"
           else [target])
    for playback_id in ids:
        await s.act("playback", {"id": playback_id, "op": "stop"})
    return [ok("STOPPLAY", quote(target), data={"stopped": len(ids)})]


@command("PLAYBACKS?", "PLAYBACKS?")
async def _playbacks_q(s: Line, args: list[str], rest: str) -> list[str]:
    listed = _playbacks(s)
    lines = [ok("PLAYBACKS", str(len(listed)))]
    for p in listed:
        lines.append(" ".join(["PLAYBACK", *pairs({
            k: p.get(k) for k in ("id", "kind", "destination", "volume", "state",
                                  "position", "source")})]))
    return lines


@command("SENSITIVITY", "SENSITIVITY 0-100", 1, 1)
async def _sensitivity(s: Line, args: list[str], rest: str) -> list[str]:
    value = _int(args[0], "sensitivity", ACTIONS["sensitivity"].arg("value"))
    result = await s.act("sensitivity", {"value": value})
    return [ok("SENSITIVITY", str(result.get("sensitivity")),
               data={"threshold_dbfs": result.get("threshold_dbfs")})]


@command("SENSITIVITY?", "SENSITIVITY?")
async def _sensitivity_q(s: Line, args: list[str], rest: str) -> list[str]:
    talk: Mapping[str, Any] = s.status().get("sensitivity") or {}
    if not talk:
        raise ProtocolError("UNAVAILABLE", "the talking detector is not running")
    return [ok("SENSITIVITY", str(talk.get("sensitivity")),
               data={"threshold_dbfs": talk.get("threshold_dbfs")})]

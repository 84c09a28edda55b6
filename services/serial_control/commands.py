"""Every command of the serial control protocol (``docs/serial-protocol.md``).

Each handler gets the session, the words after the command, and the rest of the line
as typed (for free text), and returns its reply lines. Errors are raised as
:class:`ProtocolError` here, or come from the dispatcher with their stable codes. The
words and number ranges an action's arguments accept come from its declaration in
:mod:`drivers.common.actions`; the dispatcher checks every other limit (lengths, forms), so
they are the same as over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.common.actions import ACTIONS, ActionError, Arg
from services.serial_control.format import ProtocolError, ok, pairs, quote


class Line(Protocol):
    """The line a command runs on (:class:`services.serial_control.session.ControlSession`)."""

    version: str
    events_enabled: bool

    @property
    def status(self) -> Callable[[], Mapping[str, Any]]: ...

    def controls(self) -> Mapping[str, Any]: ...

    async def act(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]: ...


Handler = Callable[[Line, list[str], str], Awaitable[list[str]]]



def words(action: str, arg: str) -> tuple[str, ...]:
    """The choices of an action's argument, as serial words (upper case)."""
    return tuple(c.upper() for c in ACTIONS[action].arg(arg).choices)


ON_OFF_TOGGLE = words("mute", "state")


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    handler: Handler
    min_args: int = 0
    max_args: int | None = 0  # None: free text follows


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, min_args: int = 0,
            max_args: int | None = 0) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, fn, min_args, max_args)
        return fn
    return register


def _word(args: list[str], i: int, allowed: tuple[str, ...], usage: str) -> str:
    value = args[i].upper() if i < len(args) else ""
    if value not in allowed:
        raise ProtocolError("BAD_ARGUMENT", f"usage: {usage}")
    return value


def _int(text: str, what: str, arg: Arg) -> int:
    lo, hi = arg.minimum, arg.maximum
    if not (text.isascii() and text.isdigit() and len(text) <= 20
            and lo <= int(text) <= hi):
        raise ProtocolError("BAD_ARGUMENT", f"{what} must be a number {lo}-{hi}, "
                                            f"got {quote(text[:32])}")
    return int(text)


def _room(text: str, arg: Arg) -> int | str:
    """A room number, or a room's name (``JOIN lobby``, for a server that names rooms)."""
    if text.isascii() and text.isdigit():
        return _int(text, "room", arg)
    try:
        return str(arg.check(text))
    except ActionError as exc:
        raise ProtocolError("BAD_ARGUMENT", str(exc)) from None


def _onoff(flag: Any) -> str:
    return "ON" if flag else "OFF"


# -- about the box ----------------------------------------------------------------------


@command("PING", "PING")
async def _ping(s: Line, args: list[str], rest: str) -> list[str]:
    return [ok("PONG")]


@command("VERSION?", "VERSION?")
async def _version(s: Line, args: list[str], rest: str) -> list[str]:
    return [ok("VERSION", quote(s.version))]


@command("HELP", "HELP")
async def _help(s: Line, args: list[str], rest: str) -> list[str]:
    return [ok("HELP", *COMMANDS)]


@command("STATUS?", "STATUS?")
async def _status(s: Line, args: list[str], rest: str) -> list[str]:
    st = s.status()
    room: Mapping[str, Any] = st.get("room") or {}
    c: Mapping[str, Any] = room.get("controls") or {}
    data: dict[str, Any] = {
        "state": st.get("state"),
        "room": room.get("id"),
        "room_state": room.get("state"),
        "members": len(room.get("members") or []),
        "mic": c.get("mic_enabled"),
        "mic_volume": c.get("mic_volume"),
        "speaker": c.get("speaker_enabled"),
        "speaker_volume": c.get("speaker_volume"),
        "video": c.get("video_enabled"),
        "deaf": c.get("deaf"),
        "hand": c.get("hand_raised"),
        "role": c.get("role"),
        "reason": st.get("reason") or None,
    }
    return [ok("STATUS", data=data)]


@command("EVENTS", "EVENTS ON|OFF", 1, 1)
async def _events(s: Line, args: list[str], rest: str) -> list[str]:
    s.events_enabled = _word(args, 0, ("ON", "OFF"), "EVENTS ON|OFF") == "ON"
    return [ok("EVENTS", _onoff(s.events_enabled))]


@command("EVENTS?", "EVENTS?")
async def _events_q(s: Line, args: list[str], rest: str) -> list[str]:
    return [ok("EVENTS", _onoff(s.events_enabled))]


@command("FACTORY", "FACTORY RESET CONFIRM", 2, 2)
async def _factory(s: Line, args: list[str], rest: str) -> list[str]:
    if [a.upper() for a in args] != ["RESET", "CONFIRM"]:
        raise ProtocolError("BAD_ARGUMENT", "usage: FACTORY RESET CONFIRM")
    await s.act("factory_reset", {})
    return [ok("FACTORY", "RESET")]


# -- the room ---------------------------------------------------------------------------


@command("JOIN", "JOIN [room]", 0, 1)
async def _join(s: Line, args: list[str], rest: str) -> list[str]:
    params = {"room": _room(args[0], ACTIONS["join"].arg("room"))} if args else {}
    result = await s.act("join", params)
    return [ok("JOIN", data={"state": result.get("state")})]


@command("LEAVE", "LEAVE")
async def _leave(s: Line, args: list[str], rest: str) -> list[str]:
    result = await s.act("leave", {})
    return [ok("LEAVE", data={"state": result.get("state")})]


@command("ROLE", "ROLE PUBLISHER|LISTENER", 1, 1)
async def _role(s: Line, args: list[str], rest: str) -> list[str]:
    role = _word(args, 0, words("role", "role"), COMMANDS["ROLE"].usage)
    await s.act("role", {"role": role.lower()})
    return [ok("ROLE", role)]


@command("MEMBERS?", "MEMBERS?")
async def _members(s: Line, args: list[str], rest: str) -> list[str]:
    room: Mapping[str, Any] = s.status().get("room") or {}
    if room.get("controls") is None:
        raise ProtocolError("UNAVAILABLE", "the room client is not running")
    members = room.get("members") or []
    lines = [ok("MEMBERS", str(len(members)))]
    for m in members:
        lines.append(" ".join(["MEMBER", *pairs({
            "id": m.get("id"), "display": m.get("display"), "role": m.get("role"),
            "talking": m.get("talking"), "muted": m.get("audio_muted"),
            "mic_off": m.get("mic_off"),
            "video_muted": m.get("video_muted"), "local_mute": m.get("locally_muted"),
            "hand": m.get("hand_raised"), "audio": m.get("has_audio"),
            "video": m.get("has_video"),
            **({"room": m["room"]} if m.get("room") else {})})]))
    return lines


@command("MEMBER", "MEMBER MUTE id|ALL ON|OFF|TOGGLE | MEMBER MODERATE id ON|OFF | "
                   "MEMBER KICK id", 2, 3)
async def _member(s: Line, args: list[str], rest: str) -> list[str]:
    verb = _word(args, 0, ("MUTE", "MODERATE", "KICK"), COMMANDS["MEMBER"].usage)
    target = args[1]
    if verb == "KICK":
        if len(args) != 2:
            raise ProtocolError("BAD_ARGUMENT", "usage: MEMBER KICK id")
        await s.act("kick", {"id": target})
        return [ok("MEMBER", "KICK", quote(target))]
    if verb == "MODERATE":
        state = _word(args, 2, words("moderate", "state"), "MEMBER MODERATE id ON|OFF")
        result = await s.act("moderate", {"id": target, "state": state.lower()})
        return [ok("MEMBER", "MODERATE", quote(target), _onoff(result.get("muted")))]
    state = _word(args, 2, ON_OFF_TOGGLE, "MEMBER MUTE id|ALL ON|OFF|TOGGLE")
    if target.upper() == "ALL":
        if state not in words("mute_all", "state"):
            raise ProtocolError("BAD_ARGUMENT", "usage: MEMBER MUTE ALL ON|OFF")
        result = await s.act("mute_all", {"state": state.lower()})
        return [ok("MEMBER", "MUTE", "ALL", _onoff(result.get("muted")))]
    result = await s.act("member_mute", {"id": target, "state": state.lower()})
    return [ok("MEMBER", "MUTE", quote(target), _onoff(result.get("muted")))]


@command("HAND", "HAND [ON|OFF|TOGGLE]", 0, 1)
async def _hand(s: Line, args: list[str], rest: str) -> list[str]:
    state = _word(args, 0, ON_OFF_TOGGLE, "HAND [ON|OFF|TOGGLE]") if args else "ON"
    result = await s.act("hand", {"state": state.lower()})
    return [ok("HAND", _onoff(result.get("raised")))]


@command("SAY", "SAY text", 1, None)
async def _say(s: Line, args: list[str], rest: str) -> list[str]:
    await s.act("message", {"text": rest})
    return [ok("SAY")]


@command("TELL", "TELL id text", 2, None)
async def _tell(s: Line, args: list[str], rest: str) -> list[str]:
    target = args[0]
    text = rest[len(args[0]):].strip(" \t")
    await s.act("message", {"text": text, "to": target})
    return [ok("TELL", quote(target))]


@command("CUSTOM", "CUSTOM cmd [json]", 1, None)
async def _custom(s: Line, args: list[str], rest: str) -> list[str]:
    cmd = args[0]
    raw = rest[len(cmd):].strip(" \t")
    params: dict[str, Any] = {"cmd": cmd}
    if raw:
        try:
            params["payload"] = json.loads(raw)
        except ValueError:
            raise ProtocolError("BAD_ARGUMENT", "the payload must be JSON "
                                                '(e.g. CUSTOM light {"on": true})') from None
    await s.act("custom", params)
    return [ok("CUSTOM", quote(cmd))]


# -- local audio and video ------------------------------------------------------------


@command("MUTE", "MUTE ON|OFF|TOGGLE", 1, 1)
async def _mute(s: Line, args: list[str], rest: str) -> list[str]:
    state = _word(args, 0, ON_OFF_TOGGLE, "MUTE ON|OFF|TOGGLE")
    result = await s.act("mute", {"state": state.lower()})
    return [ok("MUTE", _onoff(result.get("muted")))]


@command("MUTE?", "MUTE?")
async def _mute_q(s: Line, args: list[str], rest: str) -> list[str]:
    return [ok("MUTE", _onoff(not s.controls().get("mic_enabled")))]


@command("PTT", "PTT START|STOP", 1, 1)
async def _ptt(s: Line, args: list[str], rest: str) -> list[str]:
    state = _word(args, 0, (*words("ptt", "state"), "ON", "OFF"), "PTT START|STOP")
    result = await s.act("ptt", {"state": "start" if state in ("START", "ON") else "stop"})
    return [ok("PTT", _onoff(result.get("talking")))]


@command("VOLUME", "VOLUME MIC|SPEAKER 0-100|UP|DOWN", 2, 2)
async def _volume(s: Line, args: list[str], rest: str) -> list[str]:
    target = _word(args, 0, words("volume", "target"), COMMANDS["VOLUME"].usage)
    how = args[1].upper()
    params: dict[str, Any] = {"target": target.lower()}
    if how in words("volume", "step"):
        params["step"] = how.lower()
    else:
        params["value"] = _int(args[1], "volume", ACTIONS["volume"].arg("value"))
    result = await s.act("volume", params)
    return [ok("VOLUME", target, str(result.get("value")))]


def _toggle(name: str, action: str, key: str) -> None:
    usage = f"{name} ON|OFF|TOGGLE"

    async def handler(s: Line, args: list[str], rest: str) -> list[str]:
        state = _word(args, 0, ON_OFF_TOGGLE, usage)
        result = await s.act(action, {"state": state.lower()})
        return [ok(name, _onoff(result.get(key)))]

    command(name, usage, 1, 1)(handler)


_toggle("SPEAKER", "speaker", "enabled")
_toggle("VIDEO", "video", "enabled")
_toggle("DEAF", "deaf", "deaf")


# -- recording and streaming ------------------------------------------------------------


@command("RECORD", "RECORD START|STOP", 1, 1)
async def _record(s: Line, args: list[str], rest: str) -> list[str]:
    state = _word(args, 0, words("record", "state"), "RECORD START|STOP")
    result = await s.act("record", {"state": state.lower()})
    return [ok("RECORD", state, data=result)]


@command("STREAM", "STREAM START [url] | STREAM STOP", 1, 2)
async def _stream(s: Line, args: list[str], rest: str) -> list[str]:
    state = _word(args, 0, words("stream", "state"), "STREAM START [url] | STREAM STOP")
    params: dict[str, Any] = {"state": state.lower()}
    if len(args) == 2:
        if state == "STOP":
            raise ProtocolError("BAD_ARGUMENT", "usage: STREAM STOP")
        params["url"] = args[1]
    result = await s.act("stream", params)
    result = {k: v for k, v in result.items() if k not in ("url", "rtmp_url")}  # stream keys
    return [ok("STREAM", state, data=result)]


# -- links (docs/links.md) ------------------------------------------------------------

DIRECTIONS = words("link", "direction")


@command("LINK", "LINK name ws://host:port room BOTH|SEND|RECEIVE [secret]", 4, 5)
async def _link(s: Line, args: list[str], rest: str) -> list[str]:
    usage = COMMANDS["LINK"].usage
    name, server = args[0], args[1]
    room = _room(args[2], ACTIONS["link"].arg("room"))
    direction = _word(args, 3, DIRECTIONS, usage).lower()
    params: dict[str, object] = {"name": name, "server": server, "room": room,
                                 "direction": direction}
    if len(args) == 5:  # without a secret the far room is asked
        params["secret"] = args[4]
    result = await s.act("link", params)
    return [ok("LINK", quote(name), str(result.get("state", "")))]


@command("UNLINK", "UNLINK name", 1, 1)
async def _unlink(s: Line, args: list[str], rest: str) -> list[str]:
    await s.act("unlink", {"name": args[0]})
    return [ok("UNLINK", quote(args[0]))]


@command("LINKANSWER", "LINKANSWER id ACCEPT|DECLINE [reason]", 2, None)
async def _link_answer(s: Line, args: list[str], rest: str) -> list[str]:
    request_id = args[0]
    answer = _word(args, 1, words("link_answer", "answer"), COMMANDS["LINKANSWER"].usage)
    params: dict[str, object] = {"id": request_id, "answer": answer.lower()}
    reason = rest.split(None, 2)[2].strip() if len(rest.split(None, 2)) > 2 else ""
    if reason:
        params["reason"] = reason
    await s.act("link_answer", params)
    return [ok("LINKANSWER", quote(request_id), answer)]

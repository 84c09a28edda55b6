"""Every action's argument limits are the same over HTTP and over the serial line.

One appliance (the real dispatcher, a FakeRoom, its web server on a loop in a thread) is
driven both ways: ``POST /api/actions/<name>`` with the arguments as JSON, and the serial
command that says the same thing, through the real serial parser. For argument values at
and around each declared limit, and for random ones (hypothesis), both surfaces accept,
or both refuse with the same code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device import __version__
from drivers.common.actions import ACTIONS, ROOM_NAME, Arg
from services.serial_control import ControlSession
from services.web.controls import HTTP_ACTIONS
from tests.web.conftest import TIMEOUT, ServerThread

STATE_COMMANDS = {"mute": "MUTE", "speaker": "SPEAKER", "video": "VIDEO", "deaf": "DEAF",
                  "hand": "HAND", "ptt": "PTT", "record": "RECORD", "role": "ROLE"}


def serial_line(action: str, args: dict[str, Any]) -> str | None:
    """The serial command for ``action(args)``; None where the line cannot say it (a
    line has no types: ``5`` is a number, ``"5"`` cannot be told apart from it)."""
    for arg in ACTIONS[action].args:
        if arg.name not in args or arg.kind == "json":
            continue
        value = args[arg.name]
        number = isinstance(value, int) and not isinstance(value, bool)
        if arg.kind == "integer" and not number:
            return None
        # a room: a number, or a name that is not one (the line reads "5" as 5)
        if arg.kind == "room" and not (number or (isinstance(value, str)
                                       and not (value.isascii() and value.isdigit()))):
            return None
        if arg.kind not in ("integer", "room") and not isinstance(value, str):
            return None

    def word(value: Any) -> str | None:
        text = str(value)
        return text if text and len(text.split()) == 1 and text == text.strip() else None

    if action in STATE_COMMANDS:
        key = "role" if action == "role" else "state"
        if set(args) != {key} or word(args[key]) is None:
            return None
        return f"{STATE_COMMANDS[action]} {str(args[key]).upper()}"
    if action == "join":
        if not args:
            return "JOIN"
        room = word(args["room"]) if set(args) == {"room"} else None
        return f"JOIN {room}" if room is not None else None
    if action == "leave":
        return "LEAVE" if not args else None
    if action == "volume":
        if set(args) == {"target", "value"}:
            return f"VOLUME {str(args['target']).upper()} {args['value']}"
        if set(args) == {"target", "step"} and not str(args["step"]).isdigit():
            # (a number there is a value: "VOLUME MIC 0")
            return f"VOLUME {str(args['target']).upper()} {str(args['step']).upper()}"
        return None
    if action == "message":
        text = args.get("text")
        if not isinstance(text, str) or text != text.strip(" ") or set(args) - {"text", "to"}:
            return None
        if "to" not in args:
            return f"SAY {text}"
        to = word(args["to"])
        return f"TELL {to} {text}" if to is not None else None
    if action == "custom":
        cmd = word(args.get("cmd", ""))
        if cmd is None or set(args) - {"cmd", "payload"}:
            return None
        return f"CUSTOM {cmd} {json.dumps(args['payload'])}" if "payload" in args \
            else f"CUSTOM {cmd}"
    if action in ("member_mute", "moderate", "kick"):
        keys = {"id"} if action == "kick" else {"id", "state"}
        member = word(args.get("id", ""))
        if set(args) != keys or member is None or member.upper() == "ALL":
            return None
        verb = {"member_mute": "MUTE", "moderate": "MODERATE", "kick": "KICK"}[action]
        state = "" if action == "kick" else f" {str(args['state']).upper()}"
        return f"MEMBER {verb} {member}{state}"
    if action == "mute_all":
        return f"MEMBER MUTE ALL {str(args['state']).upper()}" if set(args) == {"state"} \
            else None
    if action == "stream":
        if set(args) == {"state"}:
            return f"STREAM {str(args['state']).upper()}"
        url = word(args.get("url", ""))
        return f"STREAM {str(args['state']).upper()} {url}" \
            if set(args) == {"state", "url"} and url is not None else None
    if action == "unlink":
        name = word(args.get("name", ""))
        return f"UNLINK {name}" if set(args) == {"name"} and name is not None else None
    if action == "link":
        parts = [word(args.get(k, "")) for k in ("name", "server")]
        if None in parts or set(args) - {"name", "server", "room", "secret", "direction"} \
                or not {"name", "server", "room"} <= set(args):
            return None
        direction, room = word(args.get("direction", "both")), word(args["room"])
        if direction is None or room is None:
            return None
        tail = [room, direction.upper()]
        if "secret" in args:
            secret = word(args["secret"])
            if secret is None:
                return None
            tail.append(secret)
        return " ".join(["LINK", *(str(p) for p in parts), *tail])
    if action == "link_answer":
        request_id = word(args.get("id", ""))
        if request_id is None or set(args) - {"id", "answer", "reason"} \
                or "answer" not in args:
            return None
        reason = args.get("reason")
        if reason is not None and (not isinstance(reason, str) or reason != reason.strip()
                                   or not reason):
            return None
        line = f"LINKANSWER {request_id} {str(args['answer']).upper()}"
        return f"{line} {reason}" if reason else line
    if action == "play":
        dest = word(args["destination"]) if "destination" in args else ""
        kinds = [k for k in ("file", "url", "text") if k in args]
        if dest is None or len(kinds) != 1 or set(args) - {"destination", kinds[0]} or \
                dest.upper() in ("FILE", "URL", "TEXT"):
            return None
        head = f"PLAY {dest.upper()} " if dest else "PLAY "
        value = args[kinds[0]]
        if kinds[0] == "text":
            ok = isinstance(value, str) and value == value.strip() and value != ""
            return f"{head}TEXT {value}" if ok else None
        one = word(value)
        return f"{head}{kinds[0].upper()} {one}" if one is not None else None
    if action == "playback":
        playback, op = word(args.get("id", "")), word(args.get("op", "volume"))
        if playback is None or op is None or playback.upper() == "ALL":
            return None
        if set(args) == {"id", "volume"}:
            return f"PLAYBACK {playback} VOLUME {args['volume']}"
        if set(args) != {"id", "op"}:
            return None
        return f"STOPPLAY {playback}" if op == "stop" else f"PLAYBACK {playback} {op.upper()}"
    if action == "camera":
        if len(args) != 1:
            return None
        (key, value), = args.items()
        one = word(value)
        return f"CAMERA {key.upper()} {one.upper()}" if one is not None else None
    if action == "device":
        kind, device = word(args.get("kind", "")), word(args.get("id", ""))
        return f"DEVICE {kind.upper()} {device}" \
            if kind is not None and device is not None and set(args) == {"kind", "id"} \
            else None
    if action == "sensitivity":
        return f"SENSITIVITY {args['value']}" if set(args) == {"value"} else None
    if action == "layout":
        return f"LAYOUT {str(args['layout']).upper()}" if set(args) == {"layout"} else None
    if action == "pin_member":
        if not args:
            return "PIN NONE"
        member = word(args.get("id", ""))
        return f"PIN {member}" if set(args) == {"id"} and member is not None \
            and member.upper() != "NONE" else None
    if action in ROOM_FEATURE_ACTIONS:
        return room_feature_line(action, args, word)
    raise AssertionError(f"no serial form for action {action!r}: add it to this test")


ROOM_FEATURE_ACTIONS = ("meta", "speak", "speak_answer", "speak_revoke", "room_status",
                        "room_notice", "chat_mute", "chat_lock")


def room_feature_line(action: str, args: dict[str, Any], word: Any) -> str | None:
    """The serial forms of metadata, requests to speak, room status and chat moderation."""
    values = {k: word(v) for k, v in args.items()
              if not isinstance(v, dict | list) and k != "notice"}
    if None in values.values():
        return None
    if action == "meta":
        if not {"scope", "op"} <= set(args):
            return None
        head = f"META {values['scope'].upper()} {values['op'].upper()}"
        if set(args) == {"scope", "op"}:
            return head
        if set(args) == {"scope", "op", "meta"} and args["op"] != "delete":
            return f"{head} {json.dumps(args['meta'])}"
        keys = args.get("keys")
        if set(args) == {"scope", "op", "keys"} and args["op"] == "delete" and \
                isinstance(keys, list) and keys and all(
                    isinstance(k, str) and word(k) is not None for k in keys):
            return f"{head} {' '.join(keys)}"
        return None
    if action == "speak":
        return f"SPEAK {values['state'].upper()}" if set(args) == {"state"} else None
    if action == "speak_answer":
        if set(args) != {"id", "answer"} or args["answer"] not in ("accept", "reject"):
            return None
        return f"SPEAK {values['answer'].upper()} {values['id']}"
    if action == "speak_revoke":
        return f"SPEAK REVOKE {values['id']}" if set(args) == {"id"} else None
    if action == "room_status":
        return f"ROOMSTATUS {values['status'].upper()}" if set(args) == {"status"} else None
    if action == "room_notice":
        notice = args.get("notice")
        if set(args) == {"notice"} and isinstance(notice, str) and notice.strip() and \
                notice == notice.strip() and notice.isprintable():
            return f"NOTICE {notice}"
        return None
    if action == "chat_mute":
        return f"CHAT MUTE {values['id']} {values['state'].upper()}" \
            if set(args) == {"id", "state"} else None
    return f"CHAT LOCK {values['state'].upper()}" if set(args) == {"state"} else None


class Surfaces:
    """The same appliance over HTTP and over the serial parser."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.http = requests.Session()
        r = self.http.post(f"{server.url}/api/login", json={"password": server.password},
                           timeout=TIMEOUT)
        assert r.status_code == 200
        self.headers = {"X-CSRF-Token": r.json()["csrf_token"]}
        assert server.appliance is not None
        self.appliance = server.appliance
        self.serial = ControlSession(self.appliance.dispatcher.dispatch,
                                     self.appliance.status, __version__,
                                     rate=1e9, burst=10**9)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.server.loop).result(TIMEOUT)

    def over_http(self, action: str, args: dict[str, Any]) -> str:
        r = self.http.post(f"{self.server.url}/api/actions/{action}", json=args,
                           headers=self.headers, timeout=TIMEOUT)
        assert r.status_code < 500, r.text
        return "OK" if r.status_code == 200 else str(r.json()["error"])

    def over_serial(self, line: str) -> str:
        replies = self._run(self.serial.handle(line.encode("utf-8")))
        assert len(replies) == 1, replies
        return "OK" if replies[0].startswith("OK") else replies[0].split()[1]

    def settle(self, action: str) -> None:
        if action == "join":  # back to idle: the room's state decides later outcomes
            self._run(self.appliance.dispatcher.dispatch("leave", {}, "test"))
        links = self.appliance.dispatcher.links
        if action == "link" and links is not None:  # a name is taken once: free it again
            for link in links.links():
                self._run(links.unlink(link["name"]))

    def compare(self, action: str, args: dict[str, Any]) -> tuple[str, str | None]:
        http = self.over_http(action, args)
        self.settle(action)
        line = serial_line(action, args)
        serial = self.over_serial(line) if line is not None else None
        self.settle(action)
        if serial is not None:
            assert http == serial, f"{action} {args!r:.200}: HTTP {http}, serial {serial}"
        return http, serial


@pytest.fixture
def surfaces(server_thread: ServerThread) -> Iterator[Surfaces]:
    s = Surfaces(server_thread)
    yield s
    s.http.close()


def valid(arg: Arg) -> Any:
    if arg.kind == "choice":
        return arg.choices[0]
    if arg.kind in ("integer", "room"):
        return arg.minimum
    if arg.kind == "text":
        return sized(arg, 17) if _scheme(arg) else "x"
    return {"on": True}


def _scheme(arg: Arg) -> str:
    """The URL scheme an argument's pattern asks for ("" for none)."""
    pattern = arg.pattern or ""
    if "wss?" in pattern:  # a Janus server: where nothing listens, so links fail fast
        return "ws://127.0.0.1:9/"
    return "rtmp://" if "rtmp" in pattern else "http://" if "http" in pattern else ""


def sized(arg: Arg, n: int) -> str:
    scheme = _scheme(arg)
    return scheme + "h" * max(0, n - len(scheme)) if scheme else "m" * n


def edges(arg: Arg) -> list[tuple[Any, bool]]:
    """Values at and just past the declared limits, and whether each one fits."""
    if arg.kind == "choice":
        return [(c, True) for c in arg.choices] + [("bogus", False), ("", False), (1, False)]
    if arg.kind == "integer":
        lo, hi = arg.minimum, arg.maximum
        return [(lo - 1, False), (lo, True), (hi, True), (hi + 1, False), ("5", False),
                (True, False)]
    if arg.kind == "room":  # a number, or a name
        lo, hi = arg.minimum, arg.maximum
        return [(lo - 1, False), (lo, True), (hi, True), (hi + 1, False), ("lobby", True),
                ("r" * 128, True), ("r" * 129, False), ("", False), ("the lobby", False),
                ("a/b", False), ("-1", False), (".x", False), (True, False), (1.5, False)]
    if arg.kind == "text":
        lo, hi = max(arg.min_length, len(_scheme(arg)) + 1 if _scheme(arg) else 0), \
            arg.max_length
        return [(sized(arg, lo), True), (sized(arg, hi), True), (sized(arg, hi + 1), False),
                ("", False), (7, False)]
    text_max = arg.max_bytes - 2  # a JSON string's quotes
    return [("p" * text_max, True), ("p" * (text_max + 1), False), ([1, {"a": None}], True)]


def test_every_action_has_a_serial_form() -> None:
    for name in HTTP_ACTIONS:
        spec = ACTIONS[name]
        args = {a.name: valid(a) for a in spec.args if a.required}
        if spec.one_of:
            args[spec.one_of[0]] = valid(spec.arg(spec.one_of[0]))
        assert serial_line(name, args) is not None, name
    assert set(ACTIONS) - set(HTTP_ACTIONS) == {"factory_reset"}


def test_limits_at_the_edges_are_the_same_on_both(surfaces: Surfaces) -> None:
    compared = 0
    for name in HTTP_ACTIONS:
        spec = ACTIONS[name]
        base = {a.name: valid(a) for a in spec.args if a.required}
        if spec.one_of:
            base[spec.one_of[0]] = valid(spec.arg(spec.one_of[0]))
        if name == "stream":  # no stream.rtmp_url in this config
            base["url"] = valid(spec.arg("url"))
        for arg in spec.args:
            for value, fits in edges(arg):
                args = {**base, arg.name: value}
                if arg.name in spec.one_of:
                    args = {k: v for k, v in args.items()
                            if k not in spec.one_of or k == arg.name}
                if name == "stream" and args["state"] == "stop":
                    fits = False  # url goes with start only

                http, serial = surfaces.compare(name, args)
                assert (http != "BAD_ARGUMENT") == fits, \
                    f"{name} {arg.name}={value!r:.60}: {http}"
                compared += serial is not None
    assert compared >= 80, compared  # most edges are sayable on the serial line too


WORD_CHARS = st.characters(blacklist_categories=("Z", "C"))
BAD_WORDS = st.sampled_from(["maybe", "xyz", "onn", "0", "-"])


def values(arg: Arg) -> st.SearchStrategy[Any]:
    if arg.kind == "choice":
        return st.one_of(st.sampled_from(arg.choices), BAD_WORDS)
    if arg.kind == "integer":
        lo, hi = arg.minimum, arg.maximum
        return st.one_of(st.sampled_from([lo - 1, lo, hi, hi + 1]),
                         st.integers(lo - 10, hi + 10), st.integers(-(10**20), 10**20))
    if arg.kind == "room":
        return st.one_of(st.integers(-10, 10), st.sampled_from([arg.maximum, arg.maximum + 1]),
                         st.text(WORD_CHARS, max_size=130), st.from_regex(f"^{ROOM_NAME}$"))
    if arg.kind == "text":
        hi = arg.max_length
        sizes = st.one_of(st.sampled_from([0, 1, hi - 1, hi, hi + 1]), st.integers(0, hi + 5))
        scheme = _scheme(arg)
        if scheme:
            return sizes.flatmap(lambda n: st.text(WORD_CHARS, min_size=n, max_size=n)
                                 .map(lambda t: scheme + t))
        return sizes.flatmap(lambda n: st.text(WORD_CHARS, min_size=n, max_size=n))
    return st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=10)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(HTTP_ACTIONS))
    args: dict[str, Any] = {}
    for arg in ACTIONS[name].args:
        if arg.required or draw(st.booleans()):
            args[arg.name] = draw(values(arg))
    return name, args


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(call=calls())
def test_random_arguments_get_the_same_answer_on_both(surfaces: Surfaces,
                                                      call: tuple[str, dict[str, Any]]) -> None:
    name, args = call
    http, _ = surfaces.compare(name, args)
    try:
        ACTIONS[name].validate(args)
        fits = name != "stream" or (args["state"] == "start") == ("url" in args)
    except ValueError:
        fits = False
    assert (http != "BAD_ARGUMENT") == fits, f"{name} {args!r:.200}: {http}"


def test_member_ids_are_one_word_up_to_the_limit(surfaces: Surfaces) -> None:
    limit = ACTIONS["kick"].arg("id").max_length
    assert surfaces.over_http("kick", {"id": "a b"}) == "BAD_ARGUMENT"
    assert surfaces.over_http("kick", {"id": "7" * limit}) == "NOT_IN_ROOM"
    assert surfaces.over_serial(f"MEMBER KICK {'7' * (limit + 1)}") == "BAD_ARGUMENT"
    assert surfaces.over_serial(f"TELL {'7' * (limit + 1)} hi") == "BAD_ARGUMENT"
    r = surfaces.http.post(f"{surfaces.server.url}/api/members/{'7' * (limit + 1)}/mute",
                           json={"muted": True}, headers=surfaces.headers, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"] == "BAD_ARGUMENT"


def test_the_docs_list_the_declared_limits() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("actions_reference",
                                                  root / "scripts" / "actions_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for doc in module.DOCS:
        text = (root / doc).read_text()
        assert module.update(text) == text, \
            f"{doc} is stale: run PYTHONPATH=. python scripts/actions_reference.py"

"""The actions of the appliance and the arguments each one takes, declared once.

Buttons, the serial line and the HTTP API all run actions through the dispatcher
(:mod:`device.actions`); this module is the vocabulary they share. Each action declares
its arguments here, once, with their type and limits: the dispatcher validates every call
with :meth:`ActionSpec.validate`, the HTTP API builds its request schemas (and so its
OpenAPI document) from :meth:`Arg.schema`, and the serial parser takes its words and number
ranges from :attr:`Arg.choices` and :attr:`Arg.minimum`/:attr:`Arg.maximum`. A limit is
therefore the same on every surface.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.errors import EdgeroomError

#: The largest room number (the largest integer a JSON client represents exactly).
ROOM_MAX = 2**53
#: A room's name on a server that names its rooms by strings (Janus ``string_ids``); it
#: also names files (recordings), so it is kept to these characters.
ROOM_NAME = r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}"
ROOM_NAME_FORM = "1-128 letters, digits, '.', '_', '~' or '-', starting with a letter or digit"
#: Member ids: Janus numeric ids or string ids, one word.
MEMBER_ID_MAX = 64
MESSAGE_MAX = 1000
CUSTOM_CMD_MAX = 64
#: A custom message's payload, encoded as compact JSON.
CUSTOM_PAYLOAD_MAX = 4096
URL_MAX = 2048
#: A file path (of a playback) and spoken text.
PATH_MAX = 255
SPEAK_MAX = 500


class ActionError(EdgeroomError, ValueError):
    """An action was refused; ``code`` is stable (``BAD_ARGUMENT``, ``UNAVAILABLE``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bad(message: str) -> ActionError:
    return ActionError("BAD_ARGUMENT", message)


@dataclass(frozen=True)
class Arg:
    """One argument: ``kind`` is ``choice``, ``integer``, ``text``, ``json`` or ``room``
    (a room number, or a room's name on a server that names its rooms)."""

    name: str
    kind: str
    doc: str
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: int = 0
    maximum: int = 0
    min_length: int = 1
    max_length: int = 0
    #: text: a regular expression the value must contain (``re.search``)
    pattern: str | None = None
    #: what ``pattern`` asks for, in words
    form: str = ""
    #: json: the largest size of the value as compact JSON, in bytes
    max_bytes: int = 0

    def describe(self) -> str:
        """The limits in words, as the docs and error messages state them."""
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "integer":
            return f"integer {self.minimum}-{self.maximum}"
        if self.kind == "text":
            extra = f", {self.form}" if self.form else ""
            return f"text, {self.min_length}-{self.max_length} characters{extra}"
        if self.kind == "room":
            return f"a number {self.minimum}-{self.maximum}, or a name ({ROOM_NAME_FORM})"
        return f"any JSON value, at most {self.max_bytes} bytes encoded"

    def check(self, value: Any) -> Any:
        """``value`` if it fits this argument, else :class:`ActionError` naming it."""
        name = self.name
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise _bad(f"{name} must be one of {self.describe()}, got {value!r:.40}")
        elif self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not self.minimum <= value <= self.maximum:
                raise _bad(f"{name} must be an integer {self.minimum}-{self.maximum}, "
                           f"got {value!r:.40}")
        elif self.kind == "room":
            number = isinstance(value, int) and not isinstance(value, bool)
            if not (number and self.minimum <= value <= self.maximum) and not (
                    isinstance(value, str) and re.fullmatch(ROOM_NAME, value)):
                raise _bad(f"{name} must be {self.describe()}, got {value!r:.40}")
        elif self.kind == "text":
            if not isinstance(value, str):
                raise _bad(f"{name} must be a string, got {value!r:.40}")
            if len(value) < self.min_length:
                raise _bad(f"{name} must not be empty" if self.min_length == 1 else
                           f"{name} is shorter than {self.min_length} characters")
            if len(value) > self.max_length:
                raise _bad(f"{name} is longer than {self.max_length} characters")
            if self.pattern is not None and not re.search(self.pattern, value):
                raise _bad(f"{name} must be {self.form or 'of the expected form'}")
        else:
            try:
                size = len(json.dumps(value, separators=(",", ":"), allow_nan=False)
                           .encode("utf-8"))
            except (TypeError, ValueError, RecursionError):
                raise _bad(f"{name} must be a JSON value") from None
            if size > self.max_bytes:
                raise _bad(f"{name} is larger than {self.max_bytes} bytes as JSON")
        return value

    def schema(self) -> dict[str, Any]:
        """This argument as JSON Schema (the subset :mod:`services.web.schema` checks)."""
        out: dict[str, Any]
        if self.kind == "choice":
            out = {"type": "string", "enum": list(self.choices)}
        elif self.kind == "integer":
            out = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        elif self.kind == "room":
            out = {"anyOf": [{"type": "integer", "minimum": self.minimum,
                              "maximum": self.maximum},
                             {"type": "string", "pattern": f"^{ROOM_NAME}$"}],
                   "x-form": self.describe()}
        elif self.kind == "text":
            out = {"type": "string", "minLength": self.min_length,
                   "maxLength": self.max_length}
            if self.pattern is not None:
                out["pattern"] = self.pattern
        else:
            out = {}
        out["description"] = f"{self.doc} ({self.describe()})" if self.doc else self.describe()
        return out


def choice(name: str, *values: str, doc: str = "", required: bool = True) -> Arg:
    return Arg(name, "choice", doc, required, choices=values)


def integer(name: str, minimum: int, maximum: int, doc: str = "",
            required: bool = True) -> Arg:
    return Arg(name, "integer", doc, required, minimum=minimum, maximum=maximum)


def room(name: str, doc: str = "", required: bool = True) -> Arg:
    return Arg(name, "room", doc, required, minimum=1, maximum=ROOM_MAX)


def text(name: str, max_length: int, doc: str = "", required: bool = True,
         pattern: str | None = None, form: str = "") -> Arg:
    return Arg(name, "text", doc, required, max_length=max_length, pattern=pattern, form=form)


def json_value(name: str, max_bytes: int, doc: str = "", required: bool = True) -> Arg:
    return Arg(name, "json", doc, required, max_bytes=max_bytes)


ON_OFF_TOGGLE = ("on", "off", "toggle")
LAYOUT_CHOICES = ("grid", "speaker", "single", "next")
START_STOP = ("start", "stop")
#: One word: what a serial line can carry as one argument, and what Janus ids are.
WORD = r"^\S+$"


def member_id(required: bool = True, doc: str = "member id") -> Arg:
    return text("id" if required else "to", MEMBER_ID_MAX, doc, required, pattern=WORD,
                form="one word (no spaces)")


@dataclass(frozen=True)
class ActionSpec:
    name: str
    doc: str
    args: tuple[Arg, ...] = ()
    #: exactly one of these arguments must be given
    one_of: tuple[str, ...] = ()

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"action {self.name} has no argument {name!r}")

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments, checked; :class:`ActionError` ``BAD_ARGUMENT`` names the first
        one that does not fit."""
        known = {a.name for a in self.args}
        unknown = sorted(str(k) for k in args if k not in known)
        if unknown:
            allowed = ", ".join(a.name for a in self.args) or "none"
            raise _bad(f"{self.name}: unknown argument {unknown[0]!r:.40} "
                       f"(allowed: {allowed})")
        for a in self.args:
            if a.required and a.name not in args:
                raise _bad(f"{self.name}: missing argument {a.name!r} ({a.describe()})")
        if self.one_of and sum(name in args for name in self.one_of) != 1:
            raise _bad(f"{self.name}: give exactly one of {' or '.join(self.one_of)}")
        return {a.name: a.check(args[a.name]) for a in self.args if a.name in args}

    def body_schema(self) -> dict[str, Any]:
        """The arguments as a JSON object schema (a request body of the HTTP API)."""
        schema: dict[str, Any] = {
            "type": "object", "additionalProperties": False,
            "properties": {a.name: a.schema() for a in self.args}}
        required = [a.name for a in self.args if a.required]
        if required:
            schema["required"] = required
        if self.one_of:
            schema["description"] = f"give exactly one of {', '.join(self.one_of)}"
        return schema


#: Room features carried on the message channel: metadata, requests to speak, the room
#: status and notice, chat moderation (docs/room.md).
ROOM_STATUSES = ("to-be-started", "live", "paused", "ended")
META_MAX_BYTES = 4096
NOTICE_MAX = 500
ROOM_FEATURE_ACTIONS = (
    ActionSpec("meta", "Set, merge or delete room or member (this box's) JSON metadata.",
               (choice("scope", "room", "member"),
                choice("op", "set", "update", "delete",
                       doc="set replaces, update merges top-level keys, delete removes keys "
                           "(all without keys)"),
                json_value("meta", META_MAX_BYTES, "a JSON object (set, update)",
                           required=False),
                json_value("keys", META_MAX_BYTES, "a list of key names (delete)",
                           required=False))),
    ActionSpec("speak", "As a listener, ask to publish (request) or withdraw the request.",
               (choice("state", "request", "cancel"),)),
    ActionSpec("speak_answer", "Accept or reject a listener's request to speak "
                               "(needs room.secret).",
               (member_id(), choice("answer", "accept", "reject"))),
    ActionSpec("speak_revoke", "Send a publisher back to listening (needs room.secret).",
               (member_id(),)),
    ActionSpec("room_status", "Set the room status (needs room.secret).",
               (choice("status", *ROOM_STATUSES),)),
    ActionSpec("room_notice", "Set the room notice (needs room.secret).",
               (text("notice", NOTICE_MAX, 'the notice ("-" clears it)', pattern=r"\S",
                     form="not only spaces"),)),
    ActionSpec("chat_mute", "Mute or unmute one member's messages (needs room.secret).",
               (member_id(), choice("state", "on", "off"))),
    ActionSpec("chat_lock", "Only moderators may post: on or off (needs room.secret).",
               (choice("state", "on", "off"),)),
)

ACTIONS: dict[str, ActionSpec] = {a.name: a for a in [
    ActionSpec("join", "Enter the room.",
               (room("room", "the room (default: room.room)", required=False),)),
    ActionSpec("leave", "Exit the room."),
    ActionSpec("mute", "Mic mute.", (choice("state", *ON_OFF_TOGGLE),)),
    ActionSpec("ptt", "Push-to-talk: mic live only while held.",
               (choice("state", *START_STOP),)),
    ActionSpec("volume", "Mic or speaker volume.",
               (choice("target", "mic", "speaker"),
                integer("value", 0, 100, "volume in percent", required=False),
                choice("step", "up", "down", doc="one step of 5", required=False)),
               one_of=("value", "step")),
    ActionSpec("speaker", "Speaker on/off.", (choice("state", *ON_OFF_TOGGLE),)),
    ActionSpec("video", "Camera on/off (off closes the camera).",
               (choice("state", *ON_OFF_TOGGLE),)),
    ActionSpec("deaf", "Hear nothing and mute the mic.", (choice("state", *ON_OFF_TOGGLE),)),
    ActionSpec("hand", "Raise or lower a hand.", (choice("state", *ON_OFF_TOGGLE),)),
    ActionSpec("message", "Send a text message.",
               (text("text", MESSAGE_MAX, "the message", pattern=r"\S",
                     form="not only spaces"),
                member_id(required=False, doc="to this member only"))),
    ActionSpec("custom", "Send a custom message.",
               (text("cmd", CUSTOM_CMD_MAX, "its name", pattern=WORD,
                     form="one word (no spaces)"),
                json_value("payload", CUSTOM_PAYLOAD_MAX, required=False),
                choice("priority", "high", "low", doc="default high", required=False))),
    ActionSpec("member_mute", "Stop playing one member locally.",
               (member_id(), choice("state", *ON_OFF_TOGGLE))),
    ActionSpec("mute_all", "Stop playing every remote member locally.",
               (choice("state", "on", "off"),)),
    ActionSpec("moderate", "Mute a member in the room (needs room.secret).",
               (member_id(), choice("state", "on", "off"))),
    ActionSpec("kick", "Remove a member from the room (needs room.secret).", (member_id(),)),
    ActionSpec("role", "Switch role.", (choice("role", "publisher", "listener"),)),
    ActionSpec("record", "Start or stop recording.", (choice("state", *START_STOP),)),
    ActionSpec("stream", "Start or stop the RTMP live stream.",
               (choice("state", *START_STOP),
                text("url", URL_MAX, "default: stream.rtmp_url", required=False,
                     pattern=r"^rtmps?://\S+$", form="an rtmp:// or rtmps:// URL"))),
    ActionSpec("link", "Link this room with a room on another Janus server (docs/links.md); "
               "without its secret, ask that room.",
               (text("name", 32, "name of the link", pattern=r"^[A-Za-z0-9_.-]+$",
                     form="letters, digits, _ . -"),
                text("server", URL_MAX, "far server, ws://host:8188", pattern=r"^wss?://\S+$",
                     form="a ws:// or wss:// URL"),
                room("room", "far room: its number, or its name on a server with string ids"),
                text("secret", 256, "far room's secret (else the far room is asked)",
                     required=False),
                choice("direction", "both", "send", "receive", required=False))),
    ActionSpec("unlink", "End a link.", (text("name", 32, "name of the link",
                                               pattern=r"^[A-Za-z0-9_.-]+$",
                                               form="letters, digits, _ . -"),)),
    ActionSpec("link_answer", "Accept or decline a request to link with this room.",
               (text("id", 32, "the request's id", pattern=WORD, form="one word"),
                choice("answer", "accept", "decline"),
                text("reason", 200, "why (declines)", required=False))),
    ActionSpec("layout", "The screen's layout (next: the one after the current).",
               (choice("layout", *LAYOUT_CHOICES),)),
    ActionSpec("pin_member", "Show one member large on the screen (none given: the one who "
               "talked last).",
               (text("id", MEMBER_ID_MAX, 'member id ("local": the self-view)',
                     required=False, pattern=WORD, form="one word (no spaces)"),)),
    ActionSpec("factory_reset", "Erase config and secrets, restart into setup."),
    # -- playbacks, input sensitivity --------------------------------------------------
    ActionSpec("play", "Play a sound file, a URL or spoken text into the room, on the "
                       "speaker, or both.",
               (text("file", PATH_MAX, "a WAV, OGG, FLAC or MP3 file in the state dir",
                     required=False),
                text("url", URL_MAX, "an http(s) URL of a sound", required=False,
                     pattern=r"^https?://\S+$", form="an http:// or https:// URL"),
                text("text", SPEAK_MAX, "text spoken by espeak-ng", required=False,
                     pattern=r"\S", form="not only spaces"),
                choice("destination", "room", "speaker", "both", doc="default room",
                       required=False),
                integer("volume", 0, 100, "volume in percent (default 100)", required=False),
                text("voice", 32, "espeak-ng voice (default: its own)", required=False,
                     pattern=r"^[A-Za-z0-9_+-]+$", form="a voice name such as en-us")),
               one_of=("file", "url", "text")),
    ActionSpec("playback", "Pause, resume, change the volume of, or stop a playback.",
               (text("id", MEMBER_ID_MAX, "playback id", pattern=WORD,
                     form="one word (no spaces)"),
                choice("op", "pause", "resume", "stop", required=False),
                integer("volume", 0, 100, "its new volume in percent", required=False)),
               one_of=("op", "volume")),
    ActionSpec("sensitivity", "Input sensitivity: when the box's own mic counts as talking.",
               (integer("value", 0, 100, "0: -10 dBFS, 100: -70 dBFS"),)),
    ActionSpec("camera", "Mirror or rotate the camera's picture (from the next frame).",
               (choice("mirror", *ON_OFF_TOGGLE, required=False),
                choice("rotate", "0", "90", "180", "270", doc="clockwise, degrees",
                       required=False)),
               one_of=("mirror", "rotate")),
    ActionSpec("device", "Use another mic, speaker or camera, live (in a room too).",
               (choice("kind", "mic", "speaker", "camera"),
                text("id", PATH_MAX, "the device id as the device list shows it", pattern=WORD,
                     form="one word (no spaces)"))),
    *ROOM_FEATURE_ACTIONS,
]}

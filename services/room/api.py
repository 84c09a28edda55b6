"""The transport-neutral room contract that ``device/`` codes against.

A :class:`RoomSession` lives as long as the appliance: it can join and leave many times,
and it keeps its controls (mic, speaker, video, volumes, local mutes) across joins and
reconnects. Janus is the first backend; another (WHIP, LiveKit) implements the same
protocol.

Events it emits through the :data:`drivers.base.Emit` callback it is given:

==================  ==========================================================
``room-state``      ``{"old", "new", "reason"}`` (values of :class:`RoomState`)
``entered``         ``{"room", "member_id"}`` after every successful (re)join
``reconnecting``    ``{"attempt", "delay", "reason"}``
``room-error``      ``{"code", "message"}`` (wrong pin, no such room, ...)
``member-joined``   ``Member.to_dict()``
``member-left``     ``{"id", "display"}``
``member-updated``  ``Member.to_dict()``
``talking``         ``{"id", "talking"}`` (``id`` is ``"local"`` for this box)
``message``         ``{"from", "display", "text", "to"}``
``custom-message``  ``{"from", "display", "cmd", "payload"}``
``hand``            ``{"id", "raised"}``
``moderated``       ``{"kind": "audio"|"video", "muted"}`` (we were muted by a moderator)
``kicked``          ``{"reason"}``
``controls``        ``Controls.to_dict()`` whenever a control changes
``stats``           ``RoomStats`` dict, once a second while in a room
==================  ==========================================================
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from drivers.errors import EdgeroomError

Role = Literal["publisher", "listener"]
Priority = Literal["high", "low"]


class RoomState(enum.StrEnum):
    IDLE = "idle"
    JOINING = "joining"
    IN_ROOM = "in_room"
    RECONNECTING = "reconnecting"
    ERROR = "error"


class RoomError(EdgeroomError, RuntimeError):
    """A room operation failed; ``code`` is stable and machine-readable."""

    code = "ROOM_ERROR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class WrongPin(RoomError, PermissionError):
    code = "WRONG_PIN"


class NoSuchRoom(RoomError, LookupError):
    code = "NO_SUCH_ROOM"


class Unauthorized(RoomError, PermissionError):
    code = "UNAUTHORIZED"


class RoomFull(RoomError):
    code = "ROOM_FULL"


class NotInRoom(RoomError):
    code = "NOT_IN_ROOM"


class ServerUnreachable(RoomError, ConnectionError):
    code = "SERVER_UNREACHABLE"


#: Errors that a retry cannot fix: reported once, no reconnect storm.
PERMANENT_ERRORS: tuple[type[RoomError], ...] = (WrongPin, NoSuchRoom, Unauthorized)


@dataclass
class Member:
    id: str
    display: str
    role: Role = "publisher"
    talking: bool = False
    audio_muted: bool = False  # muted at the source (by them or a moderator)
    #: the member says its mic is off (a box in a video room, services/room/messages.py);
    #: shown, never trusted to silence it
    mic_off: bool = False
    video_muted: bool = False
    locally_muted: bool = False  # we do not play them
    hand_raised: bool = False
    has_audio: bool = False
    has_video: bool = False
    room: str = ""  # the room a linked member is in (another server's); empty: this room

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Controls:
    """What the people at the box have chosen; survives leave/join and reconnects."""

    mic_enabled: bool = True
    mic_volume: int = 100
    speaker_enabled: bool = True
    speaker_volume: int = 80
    video_enabled: bool = True
    deaf: bool = False
    hand_raised: bool = False
    role: Role = "publisher"
    muted_members: set[str] = field(default_factory=set)
    mute_all: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["muted_members"] = sorted(self.muted_members)
        return d


@runtime_checkable
class RoomSession(Protocol):
    """What the appliance asks of a room backend."""

    @property
    def state(self) -> RoomState: ...

    @property
    def controls(self) -> Controls: ...

    async def join(self) -> None:
        """Join (idempotent); returns once in the room. Raises :class:`RoomError`.

        After a successful join the session keeps itself in the room (reconnecting with
        backoff) until :meth:`leave`.
        """
        ...

    async def leave(self) -> None:
        """Leave (idempotent) and stop reconnecting."""
        ...

    def members(self) -> list[Member]: ...

    def stats(self) -> dict[str, Any]:
        """Latest stats: up/down bitrate, rtt, loss; per member bitrate, jitter, delay."""
        ...

    async def set_mic(self, enabled: bool) -> None: ...

    async def set_mic_volume(self, percent: int) -> None: ...

    async def set_speaker(self, enabled: bool) -> None: ...

    async def set_speaker_volume(self, percent: int) -> None: ...

    async def set_video(self, enabled: bool) -> None:
        """Video off also closes the camera (privacy)."""
        ...

    async def set_deaf(self, deaf: bool) -> None:
        """Deaf: hear nothing and mic muted."""
        ...

    async def mute_member(self, member_id: str, muted: bool) -> None:
        """Stop (or resume) playing one member locally."""
        ...

    async def mute_all(self, muted: bool) -> None:
        """Stop (or resume) playing every remote member locally."""
        ...

    async def moderate(self, member_id: str, muted: bool) -> None:
        """Mute a member's audio in the room for everyone (needs ``room.secret``)."""
        ...

    async def kick(self, member_id: str) -> None: ...

    async def raise_hand(self, raised: bool) -> None: ...

    async def send_text(self, text: str, to: str | None = None) -> None: ...

    async def send_custom(self, cmd: str, payload: Any, priority: Priority = "high") -> None: ...

    async def set_role(self, role: Role) -> None:
        """Switch between publisher and listener at run time."""
        ...

    async def close(self) -> None:
        """Leave and release everything (idempotent)."""
        ...

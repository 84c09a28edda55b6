"""What one link needs to know: both rooms, their secrets, and which way media flows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Direction = Literal["both", "send", "receive"]
LinkBackend = Literal["videoroom", "audiobridge"]
DIRECTIONS: tuple[Direction, ...] = ("both", "send", "receive")


@dataclass(frozen=True)
class RoomEnd:
    """One side of a link: a room on one Janus server."""

    #: Janus WebSocket API, ``ws://host:8188``.
    url: str
    #: The room on that server: a number, or a name on a server with string ids (the
    #: link joins it in the kind the server takes, services/room/janus/room_ids.py).
    room: int | str
    #: The room's secret: adding remote publishers and forwarding need it.
    secret: str | None = None
    #: The room's PIN, if it has one.
    pin: str | None = None
    #: The server's ``api_secret``, if it requires one.
    api_secret: str | None = None
    #: For a ``wss://`` server: the PEM file its certificate is checked against (None:
    #: the system's CAs), as ``room.ca_file`` is for the box's own server.
    ca_file: str | None = None
    #: the config key that names ``ca_file`` (reasons say what to set)
    ca_key: str = "link.ca_file"
    #: Address the other server sends plain RTP to (default: the host of ``url``).
    media_host: str | None = None
    #: Shown as the room of this side's members on the other side (default ``room@host``).
    label: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def where(self) -> tuple[str, str]:
        """The server and the room, whichever kind the room is written in (1600 and
        "1600" are one room: a server takes only one of the two)."""
        return self.url, str(self.room)

    @property
    def rtp_host(self) -> str:
        return self.media_host or self.host

    @property
    def name(self) -> str:
        return self.label or f"{self.room}@{self.host}"

    def __repr__(self) -> str:  # no secrets in logs
        return f"<RoomEnd {self.name}>"


@dataclass(frozen=True)
class LinkSettings:
    """A link between the ``local`` room (this box's) and the ``far`` room."""

    #: The link's name (actions and events use it).
    name: str
    local: RoomEnd
    far: RoomEnd
    #: both: each room gets the other's members; send: only ours go there;
    #: receive: only theirs come here.
    direction: Direction = "both"
    #: videoroom (remote publishers) or audiobridge (plain-RTP participants).
    backend: LinkBackend = "videoroom"
    #: First and longest wait before setting the link up again after a failure.
    retry_min_s: float = 1.0
    retry_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"link {self.name!r}: direction must be one of "
                             f"{', '.join(DIRECTIONS)}, not {self.direction!r}")
        if self.backend not in ("videoroom", "audiobridge"):
            raise ValueError(f"link {self.name!r}: backend must be videoroom or audiobridge")
        if self.backend == "audiobridge" and self.direction != "both":
            # Each room's plain-RTP participant is a member of it either way.
            raise ValueError(f"link {self.name!r}: voice-room (audiobridge) links go both "
                             "ways")
        for end in (self.local, self.far):
            if urlsplit(end.url).scheme not in ("ws", "wss") or not end.host:
                raise ValueError(f"link {self.name!r}: {end.url!r} is not a ws:// or wss:// "
                                 "Janus URL")
        if self.local.where == self.far.where:
            raise ValueError(f"link {self.name!r}: a room cannot be linked to itself")

    @property
    def sends(self) -> bool:
        return self.direction in ("both", "send")

    @property
    def receives(self) -> bool:
        return self.direction in ("both", "receive")

    def __repr__(self) -> str:
        return f"<LinkSettings {self.name} {self.local.name} <-> {self.far.name} {self.direction}>"

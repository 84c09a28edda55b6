"""The ``[[link]]`` tables (links to rooms on other servers) and ``[links]``.

Each ``[[link]]`` table is one link of the box's room to a room on another Janus server
(docs/links.md). They are a list, unlike the other sections: :mod:`device.config_check`
validates each table with the same per-key rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from device.config_sections import setting


@dataclass(frozen=True)
class LinkConfig:
    #: At most this many ``[[link]]`` tables, and the keys each must have.
    MAX_ITEMS: ClassVar[int] = 8
    REQUIRED: ClassVar[tuple[str, ...]] = ("server",)

    server: str = setting(
        "", 'Janus WebSocket URL of the far room\'s server ("ws://host:8188"); required.',
        pattern=r"^wss?://[^\s/]+(:\d+)?(/\S*)?$",
    )
    room: int | str = setting(
        1234, 'Room number on that server, or its name on a server that names rooms by '
        'strings (Janus string_ids), e.g. "lobby".', minimum=1, maximum=2**53,
        check="room_name")
    secret: str | None = setting(
        None, "The far room's secret (forwarding needs it, and this box's room.secret).",
        secret=True,
    )
    direction: Literal["both", "send", "receive"] = setting(
        "both", "both; send: only this room's members go there; receive: only theirs come "
        "here (voice rooms: both only).",
    )
    name: str = setting("", "Name of the link in events and actions (default link-<n>).",
                        pattern=r"^[A-Za-z0-9_.-]{0,32}$")
    pin: str | None = setting(None, "The far room's PIN, if it has one.", secret=True)
    api_secret: str | None = setting(None, "The far server's api_secret, if it needs one.",
                                     secret=True)
    ca_file: str | None = setting(
        None, "For a wss:// server: PEM file of the CA (or the self-signed certificate) its "
        "certificate is checked against (default: the system's CAs).")
    label: str = setting("", 'Shown as the room of the far members (default "room@host").')
    media_host: str | None = setting(
        None, "Address this box's server sends RTP to (default: the host of server).")


@dataclass(frozen=True)
class LinksConfig:
    media_host: str | None = setting(
        None, "Address other servers send this room's RTP to (default: the host of "
        "room.server, or room.local_listen for the local Janus).")
    auto_accept: bool = setting(
        False, "Accept requests from other boxes to link with this room without asking "
        "(accepting hands over room.secret).")
    allow: str = setting(
        "", 'Rooms whose requests are accepted automatically, comma-separated '
        '("1234@10.0.0.2,hall"); empty: any room (when auto_accept).')

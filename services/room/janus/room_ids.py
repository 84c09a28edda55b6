"""Room and member ids as the server takes them.

Janus numbers its rooms and members unless a plugin has ``string_ids`` on: it then names
both by strings (a room "lobby" or "1234", members by UUIDs), and refuses the other kind
with ``Invalid element type (room should be a string)`` (or ``... should be a positive
integer`` the other way round). A box configured with room 1234 joins a server that names
that room "1234", and the other way round: the first refusal tells which kind the server
takes, and the join is sent again in that kind. A room name that is not a number cannot
be joined on a server that numbers its rooms; that is said plainly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.room.api import NoSuchRoom, RoomError

RoomId = int | str

_WANTS_STRING = "should be a string)"
_WANTS_NUMBER = "should be a positive integer)"


def wire_id(member_id: str, room: RoomId) -> int | str:
    """Member ``member_id`` (as the roster keeps it, a string) as the server of ``room``
    takes it: a string where rooms are named by strings, else a number."""
    return member_id if isinstance(room, str) else int(member_id)


def server_id(value: Any) -> int | str:
    """A member's id as the server gave it: a number, or a string on a server with
    string ids (where "1234" and 1234 are different members)."""
    return value if isinstance(value, str) else int(value)


async def join_in_server_kind(send: Callable[[dict[str, Any]], Awaitable[Any]],
                              body: dict[str, Any]) -> tuple[Any, RoomId]:
    """``send(body)`` (a join), again in the kind of room id the server asks for if it
    refuses ours: (what ``send`` returned, the room as the server takes it)."""
    try:
        return await send(body), body["room"]
    except RoomError as exc:
        again = in_server_kind(body, exc)
        if again is None:
            raise
        return await send(again), again["room"]


def in_kind_of(room: RoomId, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a join) for ``room``, with our member id in the same kind: a server
    that names rooms by strings names members so too."""
    member = body.get("id")
    if isinstance(room, str) and member is not None:
        return {**body, "room": room, "id": str(member)}
    return {**body, "room": room}


def in_server_kind(body: dict[str, Any], exc: RoomError) -> dict[str, Any] | None:
    """``body`` again with its room and member ids of the kind the server asked for in
    ``exc``; None when ``exc`` is not about the kind of an id (or they are already so).

    Raises :class:`~services.room.api.NoSuchRoom` for a room name on a server that
    numbers its rooms (no retry can help: the config must name a number)."""
    text = str(exc)
    room = body.get("room")
    ids = [k for k in ("room", "id") if k in body]
    if _WANTS_STRING in text and any(not isinstance(body[k], str) for k in ids):
        return in_kind_of(str(room), body)
    if _WANTS_NUMBER in text and isinstance(room, str):
        if not (room.isascii() and room.isdigit() and int(room) > 0):
            raise NoSuchRoom(
                f"room {room!r} is a name, but this room server numbers its rooms (its "
                f"plugin has string_ids off): set room.room to the room's number")
        member = body.get("id")
        return {**body, "room": int(room),
                **({"id": int(member)} if isinstance(member, str) and member.isdigit() else {})}
    return None

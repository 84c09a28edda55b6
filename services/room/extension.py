"""What the room session offers to, and asks of, the features built on its messages.

Room and member metadata, requests to speak, the room status and chat moderation travel
as custom messages on the room's TextRoom. They live outside the session: the session
hands each incoming message to its :class:`RoomExtension` first, and the extension sends
through the session's :class:`RoomLink`.
"""

from __future__ import annotations

from typing import Any, Protocol

from services.room.api import Controls, Member, Role, RoomState


class RoomLink(Protocol):
    """The session, as the extension sees it."""

    @property
    def state(self) -> RoomState: ...

    @property
    def controls(self) -> Controls: ...

    @property
    def local_id(self) -> str | None: ...

    @property
    def room_number(self) -> int | str: ...

    def members(self) -> list[Member]: ...

    def post_custom(self, cmd: str, payload: Any, to: str | None = None) -> None:
        """Queue a custom message (high priority); ``to``: whisper to that member only."""
        ...

    async def set_role(self, role: Role) -> None: ...

    async def raise_hand(self, raised: bool) -> None: ...


class RoomExtension(Protocol):
    def incoming(self, sender: str, text: str, to: str | None, history: str | None) -> bool:
        """A message from ``sender``; True when the extension took it (or dropped it) and
        the session must not report it. ``history`` is the date of a message the server
        replayed on join, None for a live one."""
        ...

    def opened(self) -> None:
        """The message channel of a (re)join is open."""
        ...

    def presence(self, member_id: str, present: bool) -> None: ...

    def left(self) -> None:
        """The box left the room (not a reconnect)."""
        ...

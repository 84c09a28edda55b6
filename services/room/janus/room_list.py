"""A VideoRoom's entry in the plugin's room list: how the room is configured (its
codecs, whether it tells who is talking). Private rooms are not listed."""

from __future__ import annotations

import logging
from typing import Any

from services.room.api import RoomError
from services.room.janus.transport import JanusHandle
from services.room.level_talk import LevelTalk

log = logging.getLogger(__name__)


async def room_entry(handle: JanusHandle, room: int | str) -> dict[str, Any] | None:
    """``room``'s entry in the list (None when it is not listed, or the list failed).
    A room numbered 1234 is the entry "1234" on a server that names rooms by strings."""
    try:
        listing, _ = await handle.send({"request": "list"})
    except RoomError as exc:
        log.debug("listing the rooms: %s", exc)
        return None
    for entry in listing.get("list", []) or []:
        if isinstance(entry, dict) and str(entry.get("room")) == str(room):
            return entry
    return None


async def learn_talk_events(handle: JanusHandle, room: int | str, levels: LevelTalk) -> None:
    """Whether the room tells who is talking (``audiolevel_event`` in its entry): then
    its events alone decide, else the members' audio levels do
    (:mod:`services.room.level_talk`) until it says otherwise. A private room is not
    listed: the levels decide until its first ``talking`` event."""
    entry = await room_entry(handle, room)
    if entry is not None and entry.get("audiolevel_event") is True:
        levels.server_told()

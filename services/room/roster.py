"""Who is in the room: members, their flags, and the events that tell about changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from drivers.base import Emit
from services.room.api import Member
from services.room.level_talk import LevelTalk
from services.room.links.naming import is_link_watcher, split_display

log = logging.getLogger(__name__)


class Roster:
    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._members: dict[str, Member] = {}
        self.local_id: str | None = None
        #: Called (on the loop) after a member joined, changed or left: what can be heard
        #: in the room may have changed (services/room/session_controls.py).
        self.on_change: Callable[[], None] | None = None
        #: Talking from the members' audio levels, where the server does not say.
        self.levels = LevelTalk(self.set_talking)

    def __repr__(self) -> str:
        return f"<Roster {sorted(self._members)}>"

    def __contains__(self, member_id: str) -> bool:
        return member_id in self._members

    def get(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def members(self) -> list[Member]:
        return list(self._members.values())

    def ids(self) -> set[str]:
        return set(self._members)

    def upsert(self, member_id: str, **changes: Any) -> Member:
        """Add a member or update its fields; emits joined/updated when something changed."""
        if member_id == self.local_id:
            raise ValueError("the local member is not in the roster")
        if "display" in changes:
            if is_link_watcher(changes["display"]):  # a link following the room
                return Member(id=member_id, display=str(changes["display"]))
            changes["display"], origin = split_display(str(changes["display"] or ""))
            if origin:
                changes["room"] = origin
        member = self._members.get(member_id)
        if member is None:
            display = str(changes.pop("display", "") or member_id)
            member = Member(id=member_id, display=display)
            _apply(member, changes)
            self._members[member_id] = member
            log.info("member %s (%s) joined", member_id, member.display)
            self._emit("member-joined", member.to_dict())
            self._changed()
            return member
        if changes.get("display") in (None, ""):
            changes.pop("display", None)
        if _apply(member, changes):
            self._emit("member-updated", member.to_dict())
            self._changed()
        return member

    def remove(self, member_id: str) -> None:
        self.levels.forget(member_id)
        member = self._members.pop(member_id, None)
        if member is not None:
            log.info("member %s (%s) left", member_id, member.display)
            self._emit("member-left", {"id": member.id, "display": member.display})
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def set_mic_off(self, member_id: str, off: bool) -> None:
        """What a member says of its own mic (a room message). Only members already in
        the roster count; it is shown, and nothing else follows it (anyone can claim a
        name on the message channel, so it never silences a voice)."""
        member = self._members.get(member_id)
        if member is not None and member.mic_off != off:
            member.mic_off = off
            self._emit("member-updated", member.to_dict())

    def server_talking(self, member_id: str, talking: bool) -> None:
        """What the room server says of a member's talking: from now on (this stay) it
        alone decides, and what the levels had decided of the others is dropped."""
        if self.levels.server_told():
            for other in self._members:
                if other != member_id:
                    self.set_talking(other, False)
        self.set_talking(member_id, talking)

    def set_talking(self, member_id: str, talking: bool) -> None:
        member = self._members.get(member_id)
        if member is not None and member.talking != talking:
            member.talking = talking
            self._emit("talking", {"id": member_id, "talking": talking})

    def clear(self) -> None:
        """Forget everyone (on leave), telling about each."""
        for member_id in list(self._members):
            self.remove(member_id)
        self.levels.clear()


_NAMES = {f.name for f in fields(Member)}


def _apply(member: Member, changes: dict[str, Any]) -> bool:
    changed = False
    for key, value in changes.items():
        if key not in _NAMES or key == "id":
            raise KeyError(f"Member has no field {key!r}")
        if getattr(member, key) != value:
            setattr(member, key, value)
            changed = True
    return changed

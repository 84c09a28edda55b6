"""Room and member metadata, and the room's status and notice, as every member keeps them.

Each member holds a copy. Updates are whole-state: a change to the room metadata sends
the complete new object with ``ts`` (ms) and ``by``; a copy takes it when ``(ts, by)`` is
newer than what it has (last writer wins, the same on every member). A member's own
metadata is sent only by that member. The status and notice are moderation: they arrive
signed (:mod:`services.room.signing`) and are kept with their signature, so a member can
hand them to a late joiner, who checks the signature itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from drivers.common.actions import META_MAX_BYTES, NOTICE_MAX, ActionError
from drivers.common.actions import ROOM_STATUSES as STATUSES


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def apply_op(current: dict[str, Any], op: str, meta: Any, keys: Any) -> dict[str, Any]:
    """The metadata after ``op``: ``set`` replaces it, ``update`` merges ``meta`` into it
    (top-level keys), ``delete`` removes ``keys`` (all of it when none are given)."""
    if op in ("set", "update"):
        if not isinstance(meta, dict):
            raise ActionError("BAD_ARGUMENT", f"meta: {op} needs a JSON object as meta")
        if keys is not None:
            raise ActionError("BAD_ARGUMENT", "meta: keys go with op delete only")
        new = dict(meta) if op == "set" else {**current, **meta}
    else:
        if meta is not None:
            raise ActionError("BAD_ARGUMENT", "meta: delete takes keys, not meta")
        if keys is None:
            new = {}
        elif isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            new = {k: v for k, v in current.items() if k not in keys}
        else:
            raise ActionError("BAD_ARGUMENT", "meta: keys must be a list of strings")
    if encoded_size(new) > META_MAX_BYTES:
        raise ActionError("BAD_ARGUMENT", f"meta: the result is larger than "
                                          f"{META_MAX_BYTES} bytes as JSON")
    return new


@dataclass
class Stamped:
    """A value with the ``(ts, by)`` that orders it."""

    value: dict[str, Any] = field(default_factory=dict)
    ts: int = 0
    by: str = ""

    def newer(self, ts: int, by: str) -> bool:
        return (ts, by) > (self.ts, self.by)

    def wire(self) -> dict[str, Any]:
        return {"meta": self.value, "ts": self.ts, "by": self.by}


@dataclass
class MetaBook:
    """The metadata this member knows of."""

    room: Stamped = field(default_factory=Stamped)
    members: dict[str, Stamped] = field(default_factory=dict)
    #: the last signed ``edgeroom.room-status`` payload taken (status, notice, signature)
    status_cmd: dict[str, Any] | None = None

    @property
    def status(self) -> str | None:
        return self.status_cmd.get("status") if self.status_cmd else None

    @property
    def notice(self) -> str | None:
        return self.status_cmd.get("notice") if self.status_cmd else None

    def take_room(self, data: Any) -> bool:
        """A room-metadata update from the wire; True if it was newer and taken."""
        parsed = parse_stamped(data)
        if parsed is None or not self.room.newer(parsed.ts, parsed.by):
            return False
        self.room = parsed
        return True

    def take_member(self, member_id: str, data: Any) -> bool:
        parsed = parse_stamped(data)
        if parsed is None:
            return False
        current = self.members.get(member_id)
        if current is not None and not current.newer(parsed.ts, parsed.by):
            return False
        self.members[member_id] = parsed
        return True

    def take_status(self, payload: dict[str, Any]) -> bool:
        """A signed status command (already verified); True if newer than ours."""
        if self.status_cmd is not None and payload["ts"] <= self.status_cmd["ts"]:
            return False
        self.status_cmd = dict(payload)
        return True

    def room_view(self) -> dict[str, Any]:
        """The ``room-meta`` event and status view."""
        return {"meta": self.room.value, "status": self.status, "notice": self.notice,
                "ts": self.room.ts or None, "by": self.room.by or None,
                "status_by": self.status_cmd.get("by") if self.status_cmd else None}

    def clear_remote(self, keep: str | None) -> None:
        """Forget what others said (on leaving); keep member ``keep``'s own metadata."""
        self.room = Stamped()
        self.status_cmd = None
        self.members = {k: v for k, v in self.members.items() if k == keep}


def parse_stamped(data: Any) -> Stamped | None:
    if not isinstance(data, dict):
        return None
    meta, ts, by = data.get("meta"), data.get("ts"), data.get("by")
    if not isinstance(meta, dict) or isinstance(ts, bool) or not isinstance(ts, int) \
            or not isinstance(by, str):
        return None
    if encoded_size(meta) > META_MAX_BYTES:
        return None
    return Stamped(meta, ts, by)


def valid_status(payload: dict[str, Any]) -> bool:
    status, notice = payload.get("status"), payload.get("notice")
    return (status is None or status in STATUSES) and \
        (notice is None or (isinstance(notice, str) and len(notice) <= NOTICE_MAX))

"""Chat moderation: per-member message mutes and the "only moderators may post" switch.

Both are signed commands (:mod:`services.room.signing`): ``edgeroom.chat-mute``
``{"id", "muted"}`` and ``edgeroom.chat-lock`` ``{"locked"}``. A box that honours them
drops the messages (text and custom) of a muted member, and while the room is locked
shows only moderators' messages, which travel signed as ``edgeroom.text`` ``{"text"}``.
The TextRoom itself still relays everything: a client that ignores these commands can
still post, and members that do not honour them still see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChatModeration:
    #: the signed payloads taken: ``chat-lock``, and ``chat-mute`` per member id
    lock_cmd: dict[str, Any] | None = None
    mute_cmds: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: int = 0

    @property
    def locked(self) -> bool:
        return bool(self.lock_cmd and self.lock_cmd.get("locked"))

    def muted(self, member_id: str) -> bool:
        cmd = self.mute_cmds.get(member_id)
        return bool(cmd and cmd.get("muted"))

    def take_lock(self, payload: dict[str, Any]) -> bool:
        if not isinstance(payload.get("locked"), bool):
            return False
        if self.lock_cmd is not None and payload["ts"] <= self.lock_cmd["ts"]:
            return False
        self.lock_cmd = dict(payload)
        return True

    def take_mute(self, payload: dict[str, Any]) -> bool:
        member_id, muted = payload.get("id"), payload.get("muted")
        if not isinstance(member_id, str) or not isinstance(muted, bool):
            return False
        current = self.mute_cmds.get(member_id)
        if current is not None and payload["ts"] <= current["ts"]:
            return False
        self.mute_cmds[member_id] = dict(payload)
        return True

    def allows(self, sender: str, moderator: bool) -> bool:
        """Is a message from ``sender`` shown? (``moderator``: it came signed.)"""
        if moderator:
            return True
        if self.muted(sender) or self.locked:
            self.dropped += 1
            return False
        return True

    def signed_state(self) -> list[tuple[str, dict[str, Any]]]:
        """The commands to hand a late joiner, as ``(cmd, payload)``."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self.lock_cmd is not None:
            out.append(("edgeroom.chat-lock", self.lock_cmd))
        out.extend(("edgeroom.chat-mute", cmd) for cmd in self.mute_cmds.values())
        return out

    def view(self) -> dict[str, Any]:
        return {"locked": self.locked,
                "muted": sorted(k for k in self.mute_cmds if self.muted(k)),
                "dropped": self.dropped}

    def clear(self) -> None:
        self.lock_cmd = None
        self.mute_cmds.clear()

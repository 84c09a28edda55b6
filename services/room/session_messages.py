"""The room session's text channel: messages and custom commands out (rate limited), and
what arrives on it (presence, messages, raised hands, moderation notices).

Part of :class:`services.room.session.JanusRoomSession`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from drivers.base import Emit
from services.room.api import NotInRoom, Priority, RoomState
from services.room.extension import RoomExtension
from services.room.messages import CMD_HAND, CMD_MODERATED, encode_custom, parse_custom
from services.room.ratelimit import MessageLimiter, Outgoing
from services.room.roster import Roster

if TYPE_CHECKING:
    from services.room.janus.textroom import TextRoom

log = logging.getLogger("services.room.session")


class SessionMessages:
    _emit: Emit
    _state: RoomState
    _textroom: TextRoom | None
    roster: Roster
    limiter: MessageLimiter
    #: Room features on the message channel (metadata, requests to speak, moderation).
    extension: RoomExtension | None

    async def _send_now(self, item: Outgoing) -> None:
        text, to = item
        if self._textroom is None:
            log.warning("room messages unavailable: dropped a message")
            return
        await self._textroom.send(text, to)

    def _require_room(self) -> None:
        if self._state not in (RoomState.IN_ROOM, RoomState.RECONNECTING):
            raise NotInRoom("not in a room")

    async def send_text(self, text: str, to: str | None = None) -> None:
        self._require_room()
        self.limiter.put(text, "high", to=to)

    async def send_custom(self, cmd: str, payload: Any, priority: Priority = "high") -> None:
        self._require_room()
        self._queue_custom(cmd, payload, priority)

    def _queue_custom(self, cmd: str, payload: Any, priority: Priority) -> None:
        self.limiter.put(encode_custom(cmd, payload), priority, key=cmd)

    def post_custom(self, cmd: str, payload: Any, to: str | None = None) -> None:
        self.limiter.put(encode_custom(cmd, payload), "high", to=to)

    # -- arriving -------------------------------------------------------------------------

    def _on_presence(self, username: str, display: str, present: bool) -> None:
        """TextRoom presence: it also shows listeners a plugin may not announce."""
        if username == self.roster.local_id:
            return
        if self.extension is not None:
            self.extension.presence(username, present)
        if present and username not in self.roster:
            self.roster.upsert(username, display=display, role="listener")
        elif not present:
            member = self.roster.get(username)
            if member is not None and member.role == "listener" and not member.has_audio:
                self.roster.remove(username)

    def _on_history(self, sender: str, text: str, date: str) -> None:
        """A message the server replayed on join (TextRoom ``history``)."""
        if self.extension is not None and self.extension.incoming(sender, text, None, date):
            return
        member = self.roster.get(sender)
        event = {"from": sender, "display": member.display if member else sender,
                 "history": True, "date": date}
        custom = parse_custom(text)
        if custom is None:
            self._emit("message", {**event, "text": text, "to": None})
        else:
            self._emit("custom-message", {**event, "cmd": custom[0], "payload": custom[1]})

    def _on_text(self, sender: str, text: str, to: str | None) -> None:
        if self.extension is not None and self.extension.incoming(sender, text, to, None):
            return
        member = self.roster.get(sender)
        display = member.display if member else sender
        custom = parse_custom(text)
        if custom is None:
            self._emit("message", {"from": sender, "display": display, "text": text, "to": to})
            return
        cmd, payload = custom
        if cmd == CMD_HAND and isinstance(payload, dict):
            raised = bool(payload.get("raised"))
            if member is not None:
                self.roster.upsert(sender, hand_raised=raised)
            self._emit("hand", {"id": sender, "raised": raised})
        elif cmd == CMD_MODERATED and isinstance(payload, dict):
            if str(payload.get("id")) == self.roster.local_id:
                self._moderated(str(payload.get("kind", "audio")), bool(payload.get("muted")))
        self._emit("custom-message", {"from": sender, "display": display, "cmd": cmd,
                                      "payload": payload})

    def _moderated(self, kind: str, muted: bool) -> None:
        log.warning("room: a moderator %s our %s", "muted" if muted else "unmuted", kind)
        self._emit("moderated", {"kind": kind, "muted": muted})

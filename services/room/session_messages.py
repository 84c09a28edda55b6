"""The room session's text channel: messages and custom commands out (rate limited), our
mic's state in a video room, and what arrives on it (presence, messages, raised hands,
the other members' mic state, moderation notices).

Part of :class:`services.room.session.JanusRoomSession`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from drivers.base import Emit
from services.room.api import Controls, NotInRoom, Priority, RoomState
from services.room.context import RoomSettings
from services.room.extension import RoomExtension
from services.room.messages import (
    CMD_HAND,
    CMD_MIC,
    CMD_MODERATED,
    encode_custom,
    parse_custom,
)
from services.room.ratelimit import MessageLimiter, Outgoing
from services.room.roster import Roster

if TYPE_CHECKING:
    from services.room.janus.textroom import TextRoom

log = logging.getLogger("services.room.session")


class SessionMessages:
    _emit: Emit
    _state: RoomState
    _controls: Controls
    settings: RoomSettings
    #: what the room was last told of our mic (None: nothing since joining)
    _mic_told: bool | None = None
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

    # -- our mic, told to the others ----------------------------------------------------

    def _mic_off(self) -> bool:
        c = self._controls
        return not c.mic_enabled or c.deaf

    def _tells_mic(self) -> bool:
        """Only a video room needs telling (a voice room's server tells the others)."""
        return (self.settings.backend == "videoroom"
                and self._state in (RoomState.IN_ROOM, RoomState.RECONNECTING))

    def _tell_mic(self) -> None:
        """Tell the others when our mic goes off or on again, and once on joining,
        whatever it is: the room's history may still hold what we said before."""
        if not self._tells_mic():
            return
        off = self._mic_off()
        if off == self._mic_told:
            return  # told already
        self._mic_told = off
        # a state: while one waits, a newer one takes its place (and a button pressed
        # again and again never fills the queue)
        self.limiter.put(encode_custom(CMD_MIC, {"off": off}), "low", key=CMD_MIC)

    def _heard_mic(self, sender: str, payload: Any) -> None:
        """What a member says of its own mic (``edgeroom.mic``), live or replayed."""
        if isinstance(payload, dict):
            self.roster.set_mic_off(sender, payload.get("off") is True)

    # -- arriving -------------------------------------------------------------------------

    def _on_presence(self, username: str, display: str, present: bool) -> None:
        """TextRoom presence: it also shows listeners a plugin may not announce."""
        if username == self.roster.local_id:
            return
        if self.extension is not None:
            self.extension.presence(username, present)
        if present and self._mic_told and self._tells_mic():
            # a member who came later: whispered, one waiting per member at most
            self.limiter.put(encode_custom(CMD_MIC, {"off": True}), "low",
                             key=f"{CMD_MIC}:{username}", to=username)
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
            return
        if custom[0] == CMD_MIC:  # replayed in order: the last one holds
            self._heard_mic(sender, custom[1])
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
        elif cmd == CMD_MIC:
            self._heard_mic(sender, payload)
        elif cmd == CMD_MODERATED and isinstance(payload, dict):
            if str(payload.get("id")) == self.roster.local_id:
                self._moderated(str(payload.get("kind", "audio")), bool(payload.get("muted")))
        self._emit("custom-message", {"from": sender, "display": display, "cmd": cmd,
                                      "payload": payload})

    def _moderated(self, kind: str, muted: bool) -> None:
        log.warning("room: a moderator %s our %s", "muted" if muted else "unmuted", kind)
        self._emit("moderated", {"kind": kind, "muted": muted})

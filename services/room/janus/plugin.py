"""What the AudioBridge and VideoRoom backends share: joining, leaving, moderation
requests and the room events both plugins report the same way."""

from __future__ import annotations

import logging

from services.room.api import RoomError
from services.room.context import RoomContext
from services.room.janus.room_ids import RoomId, in_kind_of, in_server_kind, wire_id
from services.room.janus.transport import JanusHandle, JsonDict

log = logging.getLogger(__name__)


class PluginBackend:
    """Base of a room backend on one Janus plugin; ``EVENT_KEY`` names its events."""

    EVENT_KEY = ""

    def __init__(self, ctx: RoomContext) -> None:
        self.ctx = ctx
        self.local_id = ""
        #: the VideoRoom's key of this member: a room with ``require_pvtid`` takes a
        #: subscription only with it (AudioBridge: none)
        self.private_id: int | None = None
        #: the room's id as the server takes it (a number, or a string: see room_ids)
        self.room: RoomId = ctx.settings.room
        self._closing = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} room={self.room} id={self.local_id}>"

    def _id_taken(self, exc: RoomError) -> bool:
        """Whether a join failed only because our member id is still known to the server."""
        raise NotImplementedError

    def _with_pin(self, body: JsonDict) -> JsonDict:
        if self.ctx.settings.pin:
            body["pin"] = self.ctx.settings.pin
        return body

    async def _join(self, handle: JanusHandle, body: JsonDict) -> JsonDict:
        """Send ``join``, in the kind of ids the server takes; if our id is still taken
        (a previous stay), join without it."""
        body.update(in_kind_of(body["room"], body))
        for _ in range(3):
            try:
                data, _ = await handle.send(body)
                return data
            except RoomError as exc:
                again = in_server_kind(body, exc)
                if again is not None:
                    log.info("room: the server takes the room as %r (%s)", again["room"], exc)
                    self.room = again["room"]
                elif self._id_taken(exc) and "id" in body:
                    # Our previous stay is still known to the server (it drops it on
                    # timeout).
                    again = {k: v for k, v in body.items() if k != "id"}
                else:
                    raise
                body.clear()
                body.update(again)
        data, _ = await handle.send(body)
        return data

    def _joined(self, data: JsonDict) -> None:
        self.local_id = str(data["id"])
        self.private_id = data.get("private_id")
        self.ctx.roster.local_id = self.local_id
        self.ctx.on_joined(self.local_id)

    def _forget_absent(self, present: set[str]) -> None:
        for member_id in self.ctx.roster.ids() - present:
            self.ctx.roster.remove(member_id)  # left while we were away

    async def _leave(self, handle: JanusHandle | None) -> None:
        if handle is not None and not self.ctx.conn.closed.done():
            try:
                await handle.send({"request": "leave"}, timeout=2.0)
            except (RoomError, TimeoutError) as exc:
                log.debug("leave: %s", exc)

    def _secret(self) -> str:
        if not self.ctx.settings.secret:
            raise RoomError("moderation needs room.secret in the config", code="NO_SECRET")
        return self.ctx.settings.secret

    def _moderation(self, request: str, member_id: str) -> JsonDict:
        """A moderation request about ``member_id`` (needs room.secret)."""
        return {"request": request, "room": self.room, "secret": self._secret(),
                "id": wire_id(member_id, self.room)}

    def _room_event(self, msg: JsonDict, hung_up: str) -> tuple[str | None, JsonDict] | None:
        """Handle what both plugins report alike (hangup, talking, destroyed).

        Returns the event's kind and data for the caller to go on with, or None when
        the message is dealt with or is no event.
        """
        kind = msg.get("janus")
        if kind == "hangup":
            if not self._closing:
                self.ctx.fail(f"server hung up the {hung_up}: {msg.get('reason')}")
            return None
        if kind != "event":
            return None
        data: JsonDict = msg.get("plugindata", {}).get("data", {})
        what = data.get(self.EVENT_KEY)
        if what in ("talking", "stopped-talking"):
            member_id = str(data.get("id"))
            talking = what == "talking"
            if member_id == self.local_id:
                self.ctx.on_local_talking(talking)
            else:
                self.ctx.roster.server_talking(member_id, talking)
            return None
        if what == "destroyed":
            self.ctx.fail("the room was destroyed")
            return None
        return what, data

"""Room messages over the Janus TextRoom plugin (a data channel).

``setup`` makes Janus send an offer with only a data channel; we answer, then open the
channel labelled ``JanusDataChannel`` and speak the TextRoom JSON protocol on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from services.room import deadline
from services.room.api import NoSuchRoom, RoomError
from services.room.janus.errors import janus_error
from services.room.janus.room_ids import join_in_server_kind
from services.room.janus.transport import JanusConnection, JanusHandle

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.textroom"
LABEL = "JanusDataChannel"

MessageCallback = Callable[[str, str, str | None], None]  # from, text, to (whisper)
PresenceCallback = Callable[[str, str, bool], None]  # username, display, present
HistoryCallback = Callable[[str, str, str], None]  # from, text, date
#: How many messages a room this client creates keeps for late joiners.
HISTORY = 20


class TextRoom:
    def __init__(self, conn: JanusConnection, room: int | str, username: str, display: str,
                 pin: str | None, *, on_message: MessageCallback,
                 on_presence: PresenceCallback,
                 on_history: HistoryCallback | None = None) -> None:
        self.conn = conn
        self.room = room
        self.username = username
        self.display = display
        self.pin = pin
        self._on_message = on_message
        self._on_presence = on_presence
        self._on_history = on_history
        # Janus sends a room's history (``history`` setting) between our join request
        # and its reply: what arrives then is replayed, not live.
        self._joining = False
        self.handle: JanusHandle | None = None
        from services.room.rtc import new_pc  # aiortc: loaded with the room (lazy_media.py)

        self.pc = new_pc("textroom")
        self._channel: Any = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._open = asyncio.Event()

    def __repr__(self) -> str:
        return f"<TextRoom {self.room} as {self.username} open={self._open.is_set()}>"

    async def open(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Set up the channel and join; returns the participants already there."""
        from services.room.rtc import answer_offer

        self.handle = await self.conn.attach(PLUGIN)
        _, offer = await self.handle.send({"request": "setup"})
        if offer is None:
            raise RoomError("TextRoom setup sent no offer", code="NEGOTIATION_FAILED")
        answer = await answer_offer(self.pc, offer)
        await self.handle.send({"request": "ack"}, jsep=answer)
        channel = self.pc.createDataChannel(LABEL, ordered=True)
        self._channel = channel
        channel.on("open", self._open.set)
        channel.on("message", self._on_raw)
        await deadline.wait_for(self._open.wait(), timeout)
        try:
            reply = await self._join()
        except NoSuchRoom:
            await self._create()
            reply = await self._join()
        participants: list[dict[str, Any]] = reply.get("participants", [])
        return participants

    async def _join(self) -> dict[str, Any]:
        self._joining = True
        body = {"textroom": "join", "room": self.room, "username": self.username,
                "display": self.display, "history": self._on_history is not None,
                **({"pin": self.pin} if self.pin else {})}
        try:  # the room's id in the kind the server takes (room_ids)
            reply, self.room = await join_in_server_kind(self._request, body)
            return reply
        finally:
            self._joining = False

    async def _create(self) -> None:
        assert self.handle is not None
        body: dict[str, Any] = {"request": "create", "room": self.room, "permanent": False,
                                "description": "edgeroom", "history": HISTORY}
        if self.pin:
            body["pin"] = self.pin
        log.info("textroom %s does not exist: creating it", self.room)
        await self.handle.send(body)

    async def _request(self, msg: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        txn = secrets.token_hex(6)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[txn] = fut
        try:
            self._channel.send(json.dumps({**msg, "transaction": txn}))
            reply = await deadline.wait_for(fut, timeout)
        except TimeoutError:
            raise RoomError(f"TextRoom did not answer {msg.get('textroom')}",
                            code="TIMEOUT") from None
        finally:
            self._pending.pop(txn, None)
        if reply.get("textroom") == "error":
            raise janus_error(reply.get("error_code"), str(reply.get("error", "")), plugin=True)
        return reply

    async def send(self, text: str, to: str | None = None) -> None:
        if not self._open.is_set() or self._channel.readyState != "open":
            raise RoomError("the message channel is not open", code="NOT_IN_ROOM")
        msg: dict[str, Any] = {"textroom": "message", "room": self.room, "text": text,
                               "ack": False}
        if to is not None:
            msg["to"] = to
        self._channel.send(json.dumps({**msg, "transaction": secrets.token_hex(6)}))

    def _on_raw(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError):
            log.warning("textroom: not JSON: %.100r", raw)
            return
        kind = msg.get("textroom")
        txn = msg.get("transaction")
        if txn in self._pending and kind in ("success", "error"):
            fut = self._pending[txn]
            if not fut.done():
                fut.set_result(msg)
            return
        if kind == "message":
            sender = str(msg.get("from", ""))
            if self._joining and self._on_history is not None:
                self._on_history(sender, str(msg.get("text", "")), str(msg.get("date", "")))
            elif sender != self.username:
                to = self.username if msg.get("whisper") else None
                self._on_message(sender, str(msg.get("text", "")), to)
        elif kind == "join":
            self._on_presence(str(msg.get("username")), str(msg.get("display", "")), True)
        elif kind == "leave":
            self._on_presence(str(msg.get("username")), "", False)
        elif kind == "kicked":
            self._on_presence(str(msg.get("username")), "", False)

    async def close(self) -> None:
        if self._channel is not None and self._channel.readyState == "open":
            try:
                self._channel.send(json.dumps({"textroom": "leave", "room": self.room,
                                               "transaction": secrets.token_hex(6)}))
            except Exception as exc:
                log.debug("textroom leave: %s", exc)
        await self.pc.close()
        if self.handle is not None:
            await self.handle.detach()

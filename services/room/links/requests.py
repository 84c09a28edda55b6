"""Asking another room to link, and answering (like a cross-room PK request).

The asking box joins the far room's message channel (TextRoom) as a link, not a member,
and sends a custom message ``edgeroom.link-request`` to the room. A box in that room
answers with ``edgeroom.link-answer``, whispered to the asker only: on acceptance it
carries the far room's secret, which the asker needs to forward in both rooms; the asker
then keeps the link up like a configured one. Either side ends it with
``edgeroom.link-ended``. Each box reports ``link-request``, ``link-answer`` and
``link-ended`` events.

A box gives its room secret to whoever it accepts: accept only boxes you trust (or let
the operator decide, ``auto_accept`` off).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from drivers.base import Emit
from services.room.api import RoomError
from services.room.janus.transport import JanusConnection
from services.room.lazy_media import import_room_media
from services.room.links.manager import LinkError, LinkManager
from services.room.links.naming import WATCHER_DISPLAY
from services.room.links.settings import Direction, LinkSettings, RoomEnd
from services.room.messages import encode_custom, parse_custom

if TYPE_CHECKING:
    from services.room.janus.textroom import TextRoom

log = logging.getLogger(__name__)

CMD_REQUEST = "edgeroom.link-request"
CMD_ANSWER = "edgeroom.link-answer"
CMD_ENDED = "edgeroom.link-ended"
ANSWER_TIMEOUT_S = 120.0


class Messenger(Protocol):
    """What the answering side needs of its room session."""

    async def send_text(self, text: str, to: str | None = None) -> None: ...


@dataclass(frozen=True)
class AnswerPolicy:
    """How a box answers link requests to its room."""

    #: Accept without asking the operator.
    auto_accept: bool = False
    #: Accept (automatically) only from these rooms (``room@host`` or a label); empty: any.
    allow: tuple[str, ...] = ()


class LinkResponder:
    """The box in the room asked: reports requests and sends the answers."""

    def __init__(self, own: RoomEnd, messenger: Messenger, emit: Emit,
                 policy: AnswerPolicy = AnswerPolicy()) -> None:
        self.own = own
        self._messenger = messenger
        self._emit = emit
        self.policy = policy
        self.pending: dict[str, dict[str, Any]] = {}  # request id -> request

    def on_custom_message(self, data: dict[str, Any]) -> Awaitable[None] | None:
        """Feed every ``custom-message`` event; returns the answer to await, if any."""
        cmd, payload = data.get("cmd"), data.get("payload")
        if not isinstance(payload, dict) or data.get("history"):
            return None  # a request the server replays to later joiners is not asked again
        if cmd == CMD_REQUEST and isinstance(payload.get("id"), str):
            request = {"id": payload["id"], "from": str(payload.get("from", "")),
                       "direction": str(payload.get("direction", "both")),
                       "reply_to": str(data.get("from", ""))}
            self.pending[request["id"]] = request
            self._emit("link-request", {k: v for k, v in request.items() if k != "reply_to"})
            allowed = not self.policy.allow or request["from"] in self.policy.allow
            if self.policy.auto_accept and allowed:
                return self.answer(request["id"], True)
        elif cmd == CMD_ENDED:
            self._emit("link-ended", {"id": str(payload.get("id", "")), "by": "far"})
        return None

    async def answer(self, request_id: str, accept: bool, reason: str = "") -> None:
        request = self.pending.pop(request_id, None)
        if request is None:
            raise LinkError(f"no pending link request {request_id!r}")
        if accept and not self.own.secret:
            accept, reason = False, "this room has no secret to share (room.secret)"
        payload: dict[str, Any] = {"id": request_id, "accepted": accept}
        if accept:
            payload["secret"] = self.own.secret
        elif reason:
            payload["reason"] = reason
        await self._messenger.send_text(encode_custom(CMD_ANSWER, payload),
                                        to=request["reply_to"])
        self._emit("link-answer", {"id": request_id, "accepted": accept, "reason": reason})

    async def end(self, request_id: str) -> None:
        await self._messenger.send_text(encode_custom(CMD_ENDED, {"id": request_id}))
        self._emit("link-ended", {"id": request_id, "by": "us"})


ChannelFactory = Callable[[RoomEnd, Callable[[str, str, str | None], None]],
                          Awaitable[tuple[JanusConnection, "TextRoom"]]]


async def open_channel(far: RoomEnd, on_message: Callable[[str, str, str | None], None]
                       ) -> tuple[JanusConnection, TextRoom]:
    await asyncio.to_thread(import_room_media)  # aiortc, when a link first asks
    from services.room.janus.textroom import TextRoom

    conn = JanusConnection(far.url, api_secret=far.api_secret, ca_file=far.ca_file,
                           ca_key=far.ca_key)
    room = TextRoom(conn, far.room, f"link-{secrets.token_hex(4)}", WATCHER_DISPLAY, far.pin,
                    on_message=on_message, on_presence=lambda *_: None)
    try:
        await conn.open()
        await room.open()
    except BaseException:
        await conn.close()
        raise
    return conn, room


class LinkRequester:
    """The asking box: one request at a time per far room, then the link it got."""

    def __init__(self, local: RoomEnd, manager: LinkManager, emit: Emit,
                 channel: ChannelFactory = open_channel) -> None:
        self.local = local
        self._manager = manager
        self._emit = emit
        self._channel = channel
        self._open: dict[str, tuple[JanusConnection, TextRoom, str]] = {}  # name -> ...
        self._tasks: set[asyncio.Task[None]] = set()

    async def request(self, name: str, far: RoomEnd, direction: Direction = "both",
                      timeout: float = ANSWER_TIMEOUT_S) -> bool:
        """Ask ``far``'s room; True (and the link started) once accepted."""
        request_id = secrets.token_hex(6)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def on_message(sender: str, text: str, to: str | None) -> None:
            custom = parse_custom(text)
            if custom is None or not isinstance(custom[1], dict):
                return
            cmd, payload = custom
            if payload.get("id") != request_id:
                return
            if cmd == CMD_ANSWER and to is not None and not answer.done():
                answer.set_result(payload)
            elif cmd == CMD_ENDED:
                task = asyncio.get_running_loop().create_task(self._ended(name, "far"),
                                                              name=f"link:{name}:ended")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        conn, room = await self._channel(far, on_message)
        try:
            await room.send(encode_custom(CMD_REQUEST, {"id": request_id,
                                                        "from": self.local.name,
                                                        "direction": direction}))
            self._emit("link-request", {"id": request_id, "to": far.name, "name": name,
                                        "direction": direction})
            async with asyncio.timeout(timeout):
                reply = await answer
        except BaseException as exc:
            await _close(conn, room)
            if isinstance(exc, TimeoutError):
                self._emit("link-answer", {"id": request_id, "name": name, "accepted": False,
                                           "reason": "no answer"})
                return False
            raise
        accepted = bool(reply.get("accepted")) and isinstance(reply.get("secret"), str)
        self._emit("link-answer", {"id": request_id, "name": name, "accepted": accepted,
                                   "reason": str(reply.get("reason", ""))})
        if not accepted:
            await _close(conn, room)
            return False
        self._open[name] = (conn, room, request_id)
        try:
            self._manager.add(LinkSettings(name, self.local,
                                           replace(far, secret=reply["secret"]), direction))
        except (LinkError, ValueError):
            await self.end(name)
            raise
        return True

    async def end(self, name: str) -> None:
        """End a requested link from this side."""
        opened = self._open.get(name)
        if opened is not None:
            try:
                await opened[1].send(encode_custom(CMD_ENDED, {"id": opened[2]}))
            except RoomError as exc:
                log.info("link %s: could not tell the far room it ended: %s", name, exc)
        await self._ended(name, "us")

    async def _ended(self, name: str, by: str) -> None:
        opened = self._open.pop(name, None)
        if opened is None:
            return
        try:
            await self._manager.remove(name)
        except LinkError:
            pass
        await _close(opened[0], opened[1])
        self._emit("link-ended", {"id": opened[2], "name": name, "by": by})

    async def close(self) -> None:
        for name in list(self._open):
            await self.end(name)


async def _close(conn: JanusConnection, room: TextRoom) -> None:
    try:
        await room.close()
    finally:
        await conn.close()

"""The Janus WebSocket API: one session, its handles, transactions and keepalive.

One :class:`JanusConnection` is one WebSocket (subprotocol ``janus-protocol``) carrying one
Janus session. Requests are matched to replies by ``transaction``; asynchronous plugin
requests get an ``ack`` first and their answer later as an ``event`` with the same
transaction, which is what :meth:`JanusHandle.send` waits for. Events Janus sends on its
own (new publishers, talking, hangup, ...) go to the handle's ``on_event`` callback.

When the socket drops, a ping goes unanswered (:mod:`liveness`) or Janus forgets the
session, :attr:`JanusConnection.closed` is set with the reason; the room session watches
it to reconnect. Every wait for an answer is measured with :mod:`services.room.deadline`,
so a loop that was late (a starved CPU) is not taken for a server that did not answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from services.room import deadline
from services.room.api import RoomError, ServerUnreachable
from services.room.janus.errors import janus_error
from services.room.janus.liveness import Liveness

log = logging.getLogger(__name__)

KEEPALIVE_S = 25.0
DEFAULT_TIMEOUT_S = 10.0

JsonDict = dict[str, Any]
EventCallback = Callable[[JsonDict], None]


class JanusHandle:
    """A plugin handle on a session."""

    def __init__(self, conn: JanusConnection, handle_id: int, plugin: str) -> None:
        self.conn = conn
        self.id = handle_id
        self.plugin = plugin
        self.on_event: EventCallback | None = None
        self.detached = False

    def __repr__(self) -> str:
        return f"<JanusHandle {self.plugin} {self.id}>"

    async def send(self, body: JsonDict, jsep: JsonDict | None = None,
                   timeout: float = DEFAULT_TIMEOUT_S) -> tuple[JsonDict, JsonDict | None]:
        """A plugin request; returns (plugin data, jsep or None). Raises RoomError."""
        msg: JsonDict = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        reply = await self.conn.request(msg, timeout=timeout)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data or "error" in data:
            raise janus_error(data.get("error_code"), str(data.get("error", "")), plugin=True)
        return data, reply.get("jsep")

    async def detach(self) -> None:
        if self.detached or self.conn.closed.done():
            self.detached = True
            return
        self.detached = True
        try:
            await self.conn.request({"janus": "detach", "handle_id": self.id}, timeout=3.0)
        except (RoomError, TimeoutError) as exc:
            log.debug("detach %s: %s", self, exc)

    async def hangup(self) -> None:
        if self.detached or self.conn.closed.done():
            return
        try:
            await self.conn.request({"janus": "hangup", "handle_id": self.id}, timeout=3.0)
        except (RoomError, TimeoutError) as exc:
            log.debug("hangup %s: %s", self, exc)


class JanusConnection:
    """A WebSocket to Janus carrying one session (create with :meth:`open`)."""

    def __init__(self, url: str, *, api_secret: str | None = None, token: str | None = None,
                 ca_file: str | None = None, keepalive: float = KEEPALIVE_S,
                 ca_key: str = "room.ca_file") -> None:
        self.url = url
        self.api_secret = api_secret
        self.token = token
        self.ca_file = ca_file
        #: the config key that names ``ca_file``, for the reasons given (a link has its own)
        self.ca_key = ca_key
        self.keepalive_s = keepalive
        self.session_id: int | None = None
        self.handles: dict[int, JanusHandle] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[JsonDict]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.liveness: Liveness | None = None
        #: monotonic time the session was created or last answered a keepalive (watchdog)
        self.last_answer_at = 0.0
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        state = "closed" if self.closed.done() else "open" if self._ws else "new"
        return f"<JanusConnection {self.url} session={self.session_id} {state}>"

    async def open(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        tls = self._tls()
        self._http = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(timeout):
                # Pings are ours (:mod:`liveness`): aiohttp's heartbeat gives up on a
                # pong that waits in the socket while the loop is late.
                self._ws = await self._http.ws_connect(
                    self.url, protocols=("janus-protocol",), autoping=False,
                    max_msg_size=8 * 1024 * 1024, ssl=tls)
        except aiohttp.ClientConnectorCertificateError as exc:
            await self._http.close()
            self._http = None
            by = f"{self.ca_key} ({self.ca_file})" if self.ca_file else "a CA of the system"
            raise ServerUnreachable(
                f"cannot trust the room server at {self.url}: its certificate is not signed "
                f"by {by} ({exc.certificate_error}); set {self.ca_key} to the PEM file of its "
                f"CA or of its self-signed certificate") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self._http.close()
            self._http = None
            raise ServerUnreachable(f"cannot reach the room server at {self.url}: {exc}") \
                from exc
        self.liveness = Liveness()
        self._tasks.append(asyncio.create_task(self._reader(), name="janus:reader"))
        self._tasks.append(asyncio.create_task(self._watch_link(), name="janus:liveness"))
        reply = await self.request({"janus": "create"}, timeout=timeout, session=False)
        self.session_id = int(reply["data"]["id"])
        self.last_answer_at = time.monotonic()
        self._tasks.append(asyncio.create_task(self._keepalive(), name="janus:keepalive"))
        log.info("janus session %s on %s", self.session_id, self.url)

    def _tls(self) -> ssl.SSLContext | bool:
        """How a wss:// server is checked: against ``ca_file``, else the system's CAs."""
        if not self.ca_file or not self.url.startswith("wss://"):
            return True
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ServerUnreachable(f"{self.ca_key} {self.ca_file}: not a readable PEM "
                                    f"certificate ({exc})") from exc

    async def attach(self, plugin: str) -> JanusHandle:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, int(reply["data"]["id"]), plugin)
        self.handles[handle.id] = handle
        return handle

    async def request(self, msg: JsonDict, timeout: float = DEFAULT_TIMEOUT_S,
                      session: bool = True) -> JsonDict:
        """Send ``msg`` and wait for its reply (``success``, ``event``); raises RoomError."""
        ws = self._ws
        if ws is None or self.closed.done():
            raise ServerUnreachable(f"not connected to the room server ({self._why()})")
        txn = secrets.token_hex(6)
        msg = {**msg, "transaction": txn}
        if session and self.session_id is not None:
            msg["session_id"] = self.session_id
        self._add_credentials(msg)
        fut: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self._pending[txn] = fut
        try:
            await ws.send_str(json.dumps(msg))
            reply = await deadline.wait_for(fut, timeout)
        except TimeoutError:
            raise RoomError(f"room server did not answer {msg.get('janus')} "
                            f"{msg.get('body', {}).get('request', '')} in {timeout:.0f} s",
                            code="TIMEOUT") from None
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise ServerUnreachable(f"room server connection lost: {exc}") from exc
        finally:
            self._pending.pop(txn, None)
        return _checked(reply)

    def _why(self) -> str:
        return self.closed.result() if self.closed.done() else "not open"

    async def _reader(self) -> None:
        ws = self._ws
        assert ws is not None
        reason = "connection closed"
        try:
            async for raw in ws:
                if self.liveness is not None:
                    self.liveness.heard()
                if raw.type == aiohttp.WSMsgType.PING:
                    await ws.pong(raw.data)
                elif raw.type == aiohttp.WSMsgType.TEXT:
                    try:
                        self._dispatch(json.loads(raw.data))
                    except Exception:
                        log.exception("janus: bad message %.200s", raw.data)
                elif raw.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        except asyncio.CancelledError:
            reason = "closed"
            raise
        except Exception as exc:
            reason = f"connection error: {exc}"
        finally:
            self._set_closed(reason)

    async def _watch_link(self) -> None:
        ws, liveness = self._ws, self.liveness
        assert ws is not None and liveness is not None
        reason = await liveness.run(ws.ping)
        if not self.closed.done():
            log.warning("janus connection %s: %s", self.url, reason)
            self._set_closed(reason)

    def _set_closed(self, reason: str) -> None:
        if not self.closed.done():
            log.info("janus connection %s: open -> closed (%s)", self.url, reason)
            self.closed.set_result(reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ServerUnreachable(f"room server connection lost: {reason}"))

    def _dispatch(self, msg: JsonDict) -> None:
        kind = msg.get("janus")
        txn = msg.get("transaction")
        if kind == "ack" and txn in self._pending and msg.get("hint") is None:
            fut = self._pending[txn]
            # keepalive and trickle are answered by an ack alone
            if getattr(fut, "_er_ack_ok", False) and not fut.done():
                fut.set_result(msg)
            return
        if txn is not None and txn in self._pending and kind in ("success", "error", "event"):
            fut = self._pending[txn]
            if not fut.done():
                fut.set_result(msg)
            return
        if kind == "timeout":
            self._set_closed("session timed out on the server")
            return
        sender = msg.get("sender")
        handle = self.handles.get(int(sender)) if sender is not None else None
        if handle is None:
            log.debug("janus: unrouted %s", kind)
            return
        if kind == "detached":
            handle.detached = True
        if handle.on_event is not None:
            handle.on_event(msg)

    async def _keepalive(self) -> None:
        while not self.closed.done():
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.request_ack({"janus": "keepalive"})
                self.last_answer_at = time.monotonic()
            except RoomError as exc:
                log.warning("janus keepalive failed: %s", exc)
                self._set_closed(f"keepalive failed: {exc}")
                return

    def _add_credentials(self, msg: JsonDict) -> None:
        if self.api_secret:
            msg["apisecret"] = self.api_secret
        if self.token:
            msg["token"] = self.token

    async def request_ack(self, msg: JsonDict, timeout: float = DEFAULT_TIMEOUT_S) -> JsonDict:
        """A request answered by a bare ``ack`` (keepalive)."""
        ws = self._ws
        if ws is None or self.closed.done():
            raise ServerUnreachable("not connected to the room server")
        txn = secrets.token_hex(6)
        full = {**msg, "transaction": txn, "session_id": self.session_id}
        self._add_credentials(full)
        fut: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        fut._er_ack_ok = True  # type: ignore[attr-defined]
        self._pending[txn] = fut
        try:
            await ws.send_str(json.dumps(full))
            reply = await deadline.wait_for(fut, timeout)
        except TimeoutError:
            raise RoomError("room server did not answer keepalive", code="TIMEOUT") from None
        finally:
            self._pending.pop(txn, None)
        return _checked(reply)

    async def close(self) -> None:
        """Destroy the session (best effort) and close the socket (idempotent)."""
        if self._ws is not None and not self.closed.done() and self.session_id is not None:
            try:
                await self.request({"janus": "destroy"}, timeout=2.0)
            except (RoomError, TimeoutError) as exc:
                log.debug("destroy: %s", exc)
        self._set_closed("closed")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._http is not None:
            await self._http.close()
            self._http = None


def _checked(reply: JsonDict) -> JsonDict:
    """``reply`` itself, unless it is a Janus error: then that error is raised."""
    if reply.get("janus") == "error":
        err = reply.get("error", {})
        raise janus_error(err.get("code"), str(err.get("reason", "")), plugin=False)
    return reply

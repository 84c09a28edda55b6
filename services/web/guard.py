"""The page's listening socket, guarded against slow and numerous clients.

aiohttp bounds only idle keep-alive connections, so this module adds what a box on a
LAN needs around its request handler:

- a header timeout: a connection must send a request's complete headers within
  ``header_seconds`` of connecting (later requests on a kept-alive connection within
  the same time after the previous response: aiohttp's keep-alive timeout);
- a connection cap below the open-file limit, so slow clients cannot use up the file
  descriptors the appliance needs. At the cap a new connection takes the place of the
  oldest one that has not sent a complete request yet (a slow client cannot crowd out
  a quick one); when every connection is busy, it gets a one-line 503 (JSON);
- an accept loop of our own: running out of file descriptors (EMFILE) is logged once
  per burst and retried with a backoff, never in a hot loop;
- protocol errors (a malformed request) answered with a JSON body and logged in one
  line, without a traceback.

Body timeouts are enforced where bodies are read (:func:`services.web.context.read_json`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import socket
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

#: File descriptors kept for everything but the page (Janus, media, devices, files).
FD_RESERVE = 128
MIN_CONNECTIONS = 8
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_RETRY_MIN, _RETRY_MAX = 0.05, 1.0
#: After an early answer (401, 408, 413) the rest of an unread body is drained for at
#: most this long, so the client sees the answer rather than a reset (aiohttp: 10 s).
LINGER = 2.0


def _error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


_BUSY_BODY = _error_body(503, "TOO_MANY_CONNECTIONS", "too many connections; try again")
BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
              b"Retry-After: 5\r\nConnection: close\r\nServer: edgeroom\r\n"
              b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


def connection_cap(configured: int) -> int:
    """``configured``, but below the soft open-file limit less :data:`FD_RESERVE`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(MIN_CONNECTIONS, min(configured, soft - FD_RESERVE))


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    header_seconds: float = 10.0


class _Burst:
    """Logs the first of a burst of like events, and their count once it is over
    (:data:`QUIET` seconds without one)."""

    QUIET = 5.0

    def __init__(self, first: str, end: str, level: int = logging.WARNING) -> None:
        self.first = first
        self.end = end
        self.level = level
        self.count = 0
        self.total = 0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def hit(self, *args: object) -> None:
        loop = asyncio.get_running_loop()
        if self.count == 0:
            log.log(self.level, self.first, *args)
        self.count += 1
        self.total += 1
        self._last = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self.QUIET, self._check)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        left = self._last + self.QUIET - loop.time()
        if left > 0:
            self._timer = loop.call_later(left, self._check)
            return
        self._timer = None
        log.log(self.level, self.end, self.count)
        self.count = 0

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class GuardedListener:
    """Accepts connections for an aiohttp server: ``await GuardedListener(...).start()``."""

    def __init__(self, server: web.Server, host: str, port: int, limits: Limits,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.limits = limits
        self.cap = connection_cap(limits.max_connections)
        self.ssl_context = ssl_context
        self.active = 0  # connections a handler owns
        self.handshaking = 0  # accepted, no handler yet (TLS: handshake under way)
        self.refused = _Burst("connection limit of %d reached: new connections get 503",
                              "%d connections were refused at the connection limit")
        self.slow = _Burst("closing slow connections (no complete request within %.0f s, "
                           "or the oldest such at the connection limit)",
                           "%d slow connections were closed", level=logging.INFO)
        self.accept_errors = _Burst("cannot accept connections: %s; retrying",
                                    "%d accepts failed before connections were accepted "
                                    "again", level=logging.ERROR)
        #: Connections still waiting for their first complete request, oldest first.
        self.waiting: dict[GuardedHandler, None] = {}
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.addresses: list[Any] = []

    def __repr__(self) -> str:
        return (f"<GuardedListener {self.host}:{self.port} {self.active}/{self.cap} "
                f"connections>")

    def stats(self) -> dict[str, int]:
        return {"connections": self.active + self.handshaking, "max_connections": self.cap,
                "refused": self.refused.total, "slow_closed": self.slow.total,
                "accept_errors": self.accept_errors.total}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        seen = set()
        try:
            for family, type_, proto, _, addr in infos:
                if (family, addr) in seen:
                    continue
                seen.add((family, addr))
                sock = socket.socket(family, type_, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(128)
                sock.setblocking(False)
                self.addresses.append(sock.getsockname())
        except OSError:
            self._close_sockets()
            raise
        for sock in self._sockets:
            self._spawn(self._accept_loop(sock), f"web:accept:{sock.getsockname()[1]}")
        log.info("at most %d connections to the page (open-file limit %s); request "
                 "headers within %.0f s", self.cap, _nofile(), self.limits.header_seconds)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    async def close(self) -> None:
        """Stop accepting (the connections are ended by the aiohttp server)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._close_sockets()
        for burst in (self.refused, self.slow, self.accept_errors):
            burst.cancel()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        delay = _RETRY_MIN
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # out of descriptors, or a connection gone at once
                reason = exc.strerror or str(exc)
                if exc.errno in _OUT_OF_FDS:
                    reason += f" (open-file limit {_nofile()})"
                self.accept_errors.hit(reason)
                await asyncio.sleep(delay)  # the kernel keeps the waiting connections
                delay = min(_RETRY_MAX, delay * 2)
                continue
            delay = _RETRY_MIN
            if self.active + self.handshaking >= self.cap and not self._evict_one():
                self.refused.hit(self.cap)
                _refuse(conn, tls=self.ssl_context is not None)
            else:
                self.handshaking += 1  # until the handler owns it (counted at once)
                self._spawn(self._connect(conn), "web:connection")
            # An accept that finds a connection waiting does not yield: let closes and
            # the connections' handlers run between two (fair to the rest of the loop).
            await asyncio.sleep(0)

    def _evict_one(self) -> bool:
        """Close the oldest connection without a complete request; False if none."""
        for handler in self.waiting:
            handler.close_slow()
            return True
        return False

    async def _connect(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                self._handler, conn, ssl=self.ssl_context,
                ssl_handshake_timeout=self.limits.header_seconds if self.ssl_context else None)
        except asyncio.CancelledError:
            conn.close()
            raise
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection dropped before its first request: %s", exc)
            conn.close()
        finally:
            self.handshaking -= 1

    def _handler(self) -> GuardedHandler:
        return GuardedHandler(self.server, self, loop=asyncio.get_running_loop(),
                              keepalive_timeout=self.limits.header_seconds, access_log=None,
                              logger=_ONE_LINE, lingering_time=LINGER)


def _refuse(conn: socket.socket, tls: bool) -> None:
    try:
        conn.setblocking(False)
        if not tls:
            conn.send(BUSY_REPLY)
    except OSError:
        pass
    finally:
        conn.close()


def _nofile() -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


class _OneLineLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's protocol-level complaints in one line each, without a traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        reason = f"{type(exc_info).__name__}: {exc_info}" if isinstance(
            exc_info, BaseException) else "error"
        self.warning("%s: %s", str(msg) % args if args else msg, _short(reason))


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


_ONE_LINE = _OneLineLogger(logging.getLogger("services.web.http"), {})


class GuardedHandler(RequestHandler):
    """aiohttp's request handler with a header timeout, counted by its listener."""

    __slots__ = ("_header_timer", "_listener", "_tail")

    def __init__(self, manager: web.Server, listener: GuardedListener, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._listener = listener
        self._header_timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._listener.active += 1
        self._listener.waiting[self] = None
        self._header_timer = asyncio.get_running_loop().call_later(
            self._listener.limits.header_seconds, self.close_slow)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen:
                self._headers_done()
            else:
                self._tail = seen[-3:]
        super().data_received(data)

    def _headers_done(self) -> None:
        self._listener.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._tail = b""

    def close_slow(self) -> None:
        """No complete request in time (or the oldest such at the connection limit)."""
        self._headers_done()
        self._listener.slow.hit(self._listener.limits.header_seconds)
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._headers_done()
        self._listener.active -= 1
        super().connection_lost(exc)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A JSON body as the API promises (aiohttp would answer in plain text)."""
        reason = _short(f"{type(exc).__name__}: {exc}") if exc is not None else (message or "")
        if status >= 500:  # a fault of ours, not of the client: keep the traceback
            log.error("request from %s failed: %s", request.remote, reason, exc_info=exc)
        else:
            log.warning("bad request from %s: %s", request.remote, reason)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun; cannot send the error")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        code = phrase.upper().replace(" ", "_").replace("-", "_") or "ERROR"
        text = "malformed request" if status == 400 else (phrase.lower() or "error")
        response = web.Response(body=_error_body(status, code, text), status=status,
                                content_type="application/json",
                                headers={"Server": "edgeroom"})
        response.force_close()
        return response

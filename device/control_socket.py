"""A local control socket in the state dir: ``edgeroom doctor`` asks the running
appliance for its health through it.

``<state>/control.sock`` (mode 0600, so only the appliance's user and root reach it).
A client sends one JSON line, ``{"get": "health"}``, and gets one JSON line back:
``{"ok": true, "pid", "version", "state", "uptime", "health": {"healthy", "probes"}}``;
anything else gets ``{"ok": false, "error": ...}``. Then the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096
TIMEOUT = 2.0

Answer = Callable[[str], dict[str, Any]]


class ControlSocket:
    """Serves ``answer(what)`` for ``{"get": what}`` requests on ``path``."""

    def __init__(self, path: Path, answer: Answer) -> None:
        self.path = path
        self._answer = answer
        self._server: asyncio.AbstractServer | None = None

    def __repr__(self) -> str:
        return f"<ControlSocket {self.path} {'serving' if self._server else 'closed'}>"

    async def start(self) -> bool:
        """Listen; False (logged) when another appliance already answers on the path."""
        if await query(self.path, "ping", timeout=0.5) is not None:
            log.error("control socket %s: another edgeroom answers there; not serving",
                      self.path)
            return False
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale, from a process that is gone
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path),
                                                       limit=MAX_REQUEST)
        os.chmod(self.path, 0o600)
        log.info("control socket on %s", self.path)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(TIMEOUT):
                    line = await reader.readline()
                reply = self._reply(line)
            except (TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
                reply = {"ok": False, "error": f"bad request: {exc or type(exc).__name__}"}
            writer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
            async with asyncio.timeout(TIMEOUT):
                await writer.drain()
        except (OSError, TimeoutError) as exc:
            log.debug("control socket client: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(TIMEOUT):
                    await writer.wait_closed()

    def _reply(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": 'not JSON; send {"get": "health"}'}
        what = request.get("get") if isinstance(request, dict) else None
        if what == "ping":
            return {"ok": True, "pid": os.getpid()}
        if what != "health":
            return {"ok": False, "error": f'unknown request {what!r}; send {{"get": "health"}}'}
        try:
            return {"ok": True, **self._answer(what)}
        except Exception as exc:
            log.exception("control socket: answering %s failed", what)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def query(path: Path, what: str = "health",
                timeout: float = TIMEOUT) -> dict[str, Any] | None:
    """Ask the appliance listening on ``path``; None when nothing answers there."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
            try:
                writer.write(json.dumps({"get": what}).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None
    try:
        reply = json.loads(line)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None

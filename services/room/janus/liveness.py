"""Is the WebSocket to Janus still alive? A ping after a silence, and its answer.

Janus's own keepalive comes only every 25 s and says nothing about the path, so after
:data:`IDLE_S` without a frame from Janus the box sends a WebSocket ping, and declares the
link dead when nothing (the pong or any other frame) comes back within :data:`ANSWER_S`.

That wait is measured with :func:`services.room.deadline.wait_for`, not with a timer that
fires on the loop's clock regardless: on a starved CPU the loop can be stalled past the
answer's deadline while the pong sits in the socket, and a timer that fires first would
tear a working call down (and rebuild it) because the box itself was late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.room import deadline

log = logging.getLogger(__name__)

#: Seconds without a frame from Janus before a ping.
IDLE_S = 10.0
#: Seconds (of a punctual loop) a ping has to be answered in.
ANSWER_S = 5.0


class Liveness:
    """Tracks frames from the server (:meth:`heard`) and pings it when it is silent."""

    def __init__(self, idle_s: float = IDLE_S, answer_s: float = ANSWER_S) -> None:
        self.idle_s = idle_s
        self.answer_s = answer_s
        self._loop = asyncio.get_running_loop()
        self.heard_at = self._loop.time()
        self._heard = asyncio.Event()
        self.pings = 0

    def heard(self) -> None:
        """A frame came from the server (any: a reply, an event, a pong)."""
        self.heard_at = self._loop.time()
        self._heard.set()

    async def run(self, ping: Callable[[], Awaitable[None]]) -> str:
        """Ping after each silence; returns why the link is dead (and only then)."""
        while True:
            quiet = self._loop.time() - self.heard_at
            if quiet < self.idle_s:
                await asyncio.sleep(self.idle_s - quiet)
                continue
            self._heard.clear()
            self.pings += 1
            try:
                await ping()
            except (ConnectionError, RuntimeError) as exc:
                return f"ping failed: {exc}"
            try:
                await deadline.wait_for(self._heard.wait(), self.answer_s)
            except TimeoutError:
                return f"no answer to a ping in {self.answer_s:.0f} s"

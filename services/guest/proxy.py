"""The guest's signalling path: browser WebSocket -> :class:`GuestPolicy` -> the box's
Janus, and Janus' replies back.

:class:`GuestGate` holds what the page's server needs: the links, the settings, how many
guests are connected (at most ``max_guests``) and each connection's message budget (a
token bucket of ``messages_per_second``, ``burst`` deep). A message over the budget or
refused by the policy is answered with a Janus ``error`` for its transaction and goes no
further; the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from services.guest.links import GuestLinks
from services.guest.policy import GuestPolicy, PolicyError

log = logging.getLogger(__name__)

JANUS_PROTOCOL = "janus-protocol"
MAX_MESSAGE = 64 * 1024


@dataclass(frozen=True)
class GuestSettings:
    """The guests' part of the config, with the room they may join."""

    janus_url: str
    room: int | str
    pin: str | None = None
    api_secret: str | None = None
    token: str | None = None
    max_guests: int = 4
    messages_per_second: float = 20.0
    burst: int = 60
    display_prefix: str = ""


class Socket(Protocol):
    """Both ends: aiohttp's server and client WebSockets fit."""

    async def send_str(self, data: str) -> None: ...

    def __aiter__(self) -> Any: ...


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class GuestGate:
    """``settings()`` is read at each connection (the room may change with the config)."""

    def __init__(self, settings: Callable[[], GuestSettings], links: GuestLinks) -> None:
        self._settings = settings
        self.links = links
        self.active = 0
        self.refused = 0

    def __repr__(self) -> str:
        return f"<GuestGate active={self.active}>"

    @property
    def settings(self) -> GuestSettings:
        return self._settings()

    def policy(self) -> GuestPolicy:
        s = self.settings
        return GuestPolicy(room=s.room, pin=s.pin, api_secret=s.api_secret, token=s.token,
                           display_prefix=s.display_prefix)

    def status(self) -> dict[str, Any]:
        return {"active": self.active, "max": self.settings.max_guests,
                "refused": self.refused}


def _error(transaction: Any, code: int, reason: str) -> str:
    return json.dumps({"janus": "error", "transaction": transaction,
                       "error": {"code": code, "reason": reason}})


async def relay(browser: Socket, janus: Socket, policy: GuestPolicy, bucket: TokenBucket,
                who: str) -> None:
    """Carry one guest's signalling both ways until either side closes."""
    async def up() -> None:
        async for msg in browser:
            text = getattr(msg, "data", None)
            if not isinstance(text, str):
                return  # a binary frame or a close: the guest is done
            try:
                message = json.loads(text)
            except ValueError:
                await browser.send_str(_error(None, 400, "not JSON"))
                continue
            transaction = message.get("transaction") if isinstance(message, dict) else None
            if not bucket.take():
                await browser.send_str(_error(transaction, 429, "too many requests"))
                continue
            try:
                forward = policy.check(message)
            except PolicyError as exc:
                log.info("guest %s: refused %s", who, exc)
                await browser.send_str(_error(transaction, 403, str(exc)))
                continue
            await janus.send_str(json.dumps(forward))

    async def down() -> None:
        async for msg in janus:
            text = getattr(msg, "data", None)
            if not isinstance(text, str):
                return
            try:
                policy.reply(json.loads(text))
            except ValueError:
                continue
            await browser.send_str(text)

    tasks = [asyncio.create_task(up(), name="guest:up"),
             asyncio.create_task(down(), name="guest:down")]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

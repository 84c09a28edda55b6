"""A local send rate limit for room messages.

A token bucket paces what goes to the server. High-priority messages (chat, commands,
hand) wait their turn in order and are never dropped. Low-priority ones (likes, level
updates) carry a merge key: a newer one replaces a queued one with the same key, and
when too many distinct keys are waiting, the oldest is dropped. High always goes first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from services.room.api import RoomError

log = logging.getLogger(__name__)

#: A message as queued: its text and, for a private message, the member it goes to.
Outgoing = tuple[str, str | None]
Sender = Callable[[Outgoing], Awaitable[None]]


class MessageQueueFull(RoomError):
    code = "MESSAGE_QUEUE_FULL"


class MessageLimiter:
    def __init__(self, rate: float = 10.0, burst: int = 10, max_high: int = 500,
                 max_low: int = 16) -> None:
        self.rate = rate
        self.burst = burst
        self.max_high = max_high
        self.max_low = max_low
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._high: deque[Outgoing] = deque()
        self._low: OrderedDict[str, Outgoing] = OrderedDict()
        self._wake = asyncio.Event()
        self.sent = 0
        self.merged = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return (f"<MessageLimiter high={len(self._high)} low={len(self._low)} sent={self.sent} "
                f"merged={self.merged} dropped={self.dropped}>")

    def put(self, text: str, priority: str = "high", key: str | None = None,
            to: str | None = None) -> None:
        item = (text, to)
        if priority == "high":
            if len(self._high) >= self.max_high:
                raise MessageQueueFull(f"{len(self._high)} messages waiting; try again later")
            self._high.append(item)
        else:
            merge_key = key or text
            if merge_key in self._low:
                self.merged += 1
                self._low.move_to_end(merge_key)
            elif len(self._low) >= self.max_low:
                self._low.popitem(last=False)
                self.dropped += 1
            self._low[merge_key] = item
        self._wake.set()

    def clear(self) -> None:
        """Forget what is waiting (on leave); high messages are counted as dropped."""
        self.dropped += len(self._high) + len(self._low)
        self._high.clear()
        self._low.clear()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def run(self, send: Sender) -> None:
        """Send queued messages through ``send`` until cancelled."""
        while True:
            if not self._high and not self._low:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._refill()
            if self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
                continue
            if self._high:
                await send(self._high[0])
                self._high.popleft()
            else:
                _, item = self._low.popitem(last=False)
                await send(item)
            self._tokens -= 1.0
            self.sent += 1

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "merged": self.merged, "dropped": self.dropped,
                "queued": len(self._high) + len(self._low)}

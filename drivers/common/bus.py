"""The event bus: every change in the appliance is published here, once, and every
surface (web page, serial line, LEDs, logs) subscribes.

Each subscriber has its own bounded queue; a slow subscriber loses its oldest events
(counted) and never slows the publisher or the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.common.redact import redact
from drivers.queues import DropOldestQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: dict[str, Any]
    seq: int
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.name, "seq": self.seq, "ts": self.ts, "data": self.data}


class Subscription:
    """An async iterator of events; close it (or leave its ``async with``) when done."""

    def __init__(self, bus: EventBus, maxsize: int, names: frozenset[str] | None) -> None:
        self._bus = bus
        self._names = names
        self.queue: DropOldestQueue[Event] = DropOldestQueue(maxsize)

    def wants(self, event: Event) -> bool:
        return self._names is None or event.name in self._names

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.queue.get()
        except EOFError:
            raise StopAsyncIteration from None

    async def get(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def close(self) -> None:
        self._bus._subscribers.discard(self)
        self.queue.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Publish/subscribe on the event loop. ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, maxsize: int = 256, names: set[str] | None = None) -> Subscription:
        sub = Subscription(self, maxsize, frozenset(names) if names else None)
        self._subscribers.add(sub)
        return sub

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` synchronously on the loop for every event."""
        self._listeners.append(callback)

    def publish(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Publish an event (the :data:`drivers.base.Emit` signature)."""
        loop = self._loop
        if loop is not None and not _on_loop(loop):
            try:
                loop.call_soon_threadsafe(self._deliver, name, dict(data or {}))
            except RuntimeError:
                pass  # loop closed while shutting down
            return
        self._deliver(name, dict(data or {}))

    def _deliver(self, name: str, data: dict[str, Any]) -> None:
        # No URL credentials or stream keys reach any surface (page, serial line).
        event = Event(name, redact(data), next(self._seq))
        log.debug("event %s %s", name, data)
        for sub in list(self._subscribers):
            if sub.wants(event):
                sub.queue.put_nowait(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", name)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False

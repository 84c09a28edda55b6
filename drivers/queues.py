"""Bounded hand-over from device threads to the event loop.

Real-time media must never queue without bound: when the consumer falls behind, the
oldest item is dropped (and counted) so that what is delivered stays fresh.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """An asyncio queue of bounded size that drops its oldest item when full.

    ``put_nowait`` must be called on the loop; producer threads use ``put_threadsafe``.
    """

    def __init__(self, maxsize: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop = loop
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<DropOldestQueue {len(self._items)}/{self.maxsize} dropped={self.dropped}>"

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def put_nowait(self, item: T) -> None:
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put_threadsafe(self, item: T) -> None:
        """Hand an item over from another thread (drops silently if the loop is closed)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("queue is not bound to an event loop")
        try:
            loop.call_soon_threadsafe(self.put_nowait, item)
        except RuntimeError:
            # The loop has shut down: nobody will consume this item.
            pass

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    def clear(self) -> None:
        self._items.clear()

    def close(self) -> None:
        """Wake a waiting consumer with :class:`EOFError` from then on."""
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            if self._closed:
                raise EOFError("queue closed")
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

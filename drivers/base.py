"""Small pieces every driver shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

#: How a driver reports something that happened (``emit("device-lost", {"device": ...})``).
#: The appliance passes its event bus' ``publish``; events are delivered on the event loop.
Emit = Callable[[str, dict[str, Any]], None]


def null_emit(name: str, data: dict[str, Any]) -> None:
    """An :data:`Emit` that discards everything (for tools and tests that do not listen)."""


def hand_to_loop(loop: asyncio.AbstractEventLoop | None, callback: Callable[..., object],
                 *args: Any) -> None:
    """From a device thread, run ``callback(*args)`` on ``loop``; without a loop, or once
    it has shut down, drop the call (nobody is listening any more)."""
    if loop is None:
        return
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass  # the loop has shut down

"""Small pieces every driver shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: How a driver reports something that happened (``emit("device-lost", {"device": ...})``).
#: The appliance passes its event bus' ``publish``; events are delivered on the event loop.
Emit = Callable[[str, dict[str, Any]], None]


def null_emit(name: str, data: dict[str, Any]) -> None:
    """An :data:`Emit` that discards everything (for tools and tests that do not listen)."""

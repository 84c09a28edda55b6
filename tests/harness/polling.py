"""Waiting in tests for state that other threads or tasks change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

TIMEOUT_S = 5.0


async def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT_S,
                     interval: float = 0.002) -> None:
    """Poll ``cond`` every ``interval`` seconds until it holds; fail after ``timeout``."""
    async def poll() -> None:
        while not cond():  # noqa: ASYNC110 (polling state other threads change)
            await asyncio.sleep(interval)
    await asyncio.wait_for(poll(), timeout)


def frames_at_least(dev: Any, n: int) -> Callable[[], bool]:
    """A condition: ``dev`` has handled at least ``n`` frames."""
    return lambda: bool(dev.stats["frames"] >= n)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Blocking: poll ``predicate`` until it returns something true, and return that;
    fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")

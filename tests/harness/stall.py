"""Blocking a box's event loop on purpose, as a blocking call inside it would."""

from __future__ import annotations

import threading
import time
from typing import Any


def block_loop(loop: Any, seconds: float) -> tuple[float, float]:
    """Block ``loop`` (an NsLoop, or anything with ``call_soon_threadsafe``) for
    ``seconds`` from inside one of its callbacks; returns when the block began and ended
    (monotonic)."""
    target = getattr(loop, "loop", loop)
    began = threading.Event()
    ended = threading.Event()
    times: list[float] = []

    def stall() -> None:
        times.append(time.monotonic())
        began.set()
        time.sleep(seconds)
        times.append(time.monotonic())
        ended.set()

    target.call_soon_threadsafe(stall)
    assert began.wait(10), "the box's loop never ran the stall"
    assert ended.wait(seconds + 10)
    return times[0], times[1]

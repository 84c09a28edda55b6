"""How late a room session's event loop runs: the lag of a 10 ms timer on it.

Packets are stamped when the loop hands them to the jitter buffer, so a loop that runs
late makes packets look late too. A :class:`LoopLag` probe runs on a peer's loop and
records, for every tick, how much later than asked the timer fired; :meth:`take` gives
the lags since the last call (ms).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any

from tests.harness.peers import RoomPeer

TICK_S = 0.01


class LoopLag:
    def __init__(self, peer: RoomPeer) -> None:
        self._lags: list[float] = []
        self._lock = threading.Lock()
        self._task: Future[Any] = peer.loop.submit(self._probe())

    async def _probe(self) -> None:
        while True:
            asked = time.monotonic() + TICK_S
            await asyncio.sleep(TICK_S)
            lag = (time.monotonic() - asked) * 1000
            with self._lock:
                self._lags.append(lag)

    def take(self) -> list[float]:
        with self._lock:
            got, self._lags = self._lags, []
        return got

    def close(self) -> None:
        self._task.cancel()


def lag_summary(lags: list[float]) -> dict[str, float | int | None]:
    """p99 and max of the lags (ms), and how many ticks ran more than 20 ms late."""
    if not lags:
        return {"p99_ms": None, "max_ms": None, "over_20ms": 0}
    data = sorted(lags)
    return {"p99_ms": round(data[min(len(data) - 1, int(0.99 * len(data)))], 1),
            "max_ms": round(data[-1], 1), "over_20ms": sum(1 for x in data if x > 20.0)}

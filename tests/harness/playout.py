"""A member's jitter buffer played on one simulated clock: packets put at their arrival
times, the speaker pulling on a fixed grid. Exact and repeatable, for tests and benchmarks
of the receive side on packet traces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from services.room.jitter import JitterBuffer
from tests.harness.clock import Clock


@dataclass
class Playout:
    buf: JitterBuffer
    out: np.ndarray
    #: the buffer's ``delay_ms`` after each pull
    delays: list[float] = field(default_factory=list)


def play_trace(packets: list[bytes] | tuple[bytes, ...], arrivals: Iterable[tuple[float, int]],
               seconds: float, *, frame: int = 960, pull: int = 960,
               first_pull: float = 0.0031) -> Playout:
    """Packet ``i`` of ``frame`` samples arrives at each ``(time, i)`` of ``arrivals``
    (lost when absent); the speaker pulls ``pull`` samples every ``pull / 48 kHz`` from
    ``first_pull`` until ``seconds``. A pull with nothing to play gives silence."""
    events = sorted(arrivals)
    clock = Clock()
    buf = JitterBuffer(clock=clock)
    out: list[np.ndarray] = []
    delays: list[float] = []
    period = pull / 48_000
    t, e = first_pull, 0
    while t < seconds:
        while e < len(events) and events[e][0] <= t:
            clock.now, i = events[e]
            buf.put(i & 0xFFFF, (i * frame) & 0xFFFFFFFF, packets[i])
            e += 1
        clock.now = t
        got = buf.pull(pull)
        out.append(np.zeros(pull, np.int16) if got is None else got)
        delays.append(buf.delay_ms)
        t += period
    return Playout(buf, np.concatenate(out), delays)

"""A member's jitter buffer played on one simulated clock: packets put at their arrival
times, the speaker pulling on a fixed grid. Exact and repeatable, for tests and benchmarks
of the receive side on packet traces."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.room.jitter import JitterBuffer
from tests.harness.clock import Clock


@dataclass
class Playout:
    buf: JitterBuffer
    out: np.ndarray
    #: the buffer's ``delay_ms`` after each pull
    delays: list[float] = field(default_factory=list)
    #: when each pull came, and the buffer's ``target_ms`` after it
    times: list[float] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    #: pulls that had nothing to play (silence, not concealment)
    silent_pulls: int = 0

    def delay_at(self, t0: float, t1: float) -> list[float]:
        """``delay_ms`` after the pulls from ``t0`` to ``t1`` s."""
        return [d for t, d in zip(self.times, self.delays, strict=True) if t0 <= t < t1]

    def target_at(self, t0: float, t1: float) -> list[float]:
        """``target_ms`` after the pulls from ``t0`` to ``t1`` s."""
        return [g for t, g in zip(self.times, self.targets, strict=True) if t0 <= t < t1]


def play_trace(packets: list[bytes] | tuple[bytes, ...], arrivals: Iterable[tuple[float, int]],
               seconds: float, *, frame: int = 960, pull: int = 960,
               first_pull: float = 0.0031, ppm: float = 0.0, ts_base: int = 0,
               late: tuple[float, float] = (0.0, 0.0), late_seed: int = 0,
               **buffer: Any) -> Playout:
    """Packet ``i`` of ``frame`` samples (RTP timestamp ``ts_base + i * frame``) arrives
    at each ``(time, i)`` of ``arrivals`` (lost when absent); the speaker pulls ``pull``
    samples every ``pull / 48 kHz`` of its own clock (fast by ``ppm``) from ``first_pull``
    until ``seconds``. With ``late = (p, ms)`` a pull comes up to ``ms`` late with
    probability ``p`` (a busy playout thread; ``late_seed`` seeds it) and the ones after
    it catch up with the grid. A pull with nothing to play gives silence. ``buffer``:
    the :class:`JitterBuffer`'s own settings."""
    events = sorted(arrivals)
    clock = Clock()
    buf = JitterBuffer(clock=clock, **buffer)
    run = Playout(buf, np.zeros(0, np.int16))
    out: list[np.ndarray] = []
    period = pull / 48_000 / (1 + ppm * 1e-6)
    late_rng = random.Random(late_seed)
    e, k, t = 0, 0, 0.0
    while (due := first_pull + k * period) < seconds:
        k += 1
        if late[0] and late_rng.random() < late[0]:
            due += late_rng.uniform(0, late[1] / 1000)
        t = max(t, due)
        while e < len(events) and events[e][0] <= t:
            clock.now, i = events[e]
            buf.put(i & 0xFFFF, (ts_base + i * frame) & 0xFFFFFFFF, packets[i])
            e += 1
        clock.now = t
        got = buf.pull(pull)
        if got is None:
            run.silent_pulls += 1
            got = np.zeros(pull, np.int16)
        assert len(got) == pull
        out.append(got)
        run.times.append(t)
        run.delays.append(buf.delay_ms)
        run.targets.append(buf.target_ms)
    run.out = np.concatenate(out)
    return run

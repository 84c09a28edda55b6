"""What an impaired link does to each packet, one direction at a time.

An :class:`Impairment` describes one direction of a link: one-way delay and jitter, random
loss, Gilbert-Elliott burst loss, a bandwidth cap and periodic outages. A
:class:`Direction` applies one to a stream of packets: given a packet's size and arrival
time it answers when the packet leaves, or why it is dropped. It is pure logic (no I/O),
run by the forwarder process (:mod:`tests.harness.impair_fwd`) for each direction of an
impaired link (:mod:`tests.harness.impaired`).

Order of the stages, for each packet: outage, loss (burst, then random), the bandwidth
queue (tail drop when it holds more than ``queue_ms``), then delay and jitter. Each packet
gets its own delay, so packets overtake each other when the jitter exceeds their spacing
(reordering, as on a real path with several routes or a Wi-Fi retry).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Impairment:
    """One direction of a link. The default is a clean link.

    - ``delay_ms``: one-way delay added to every packet.
    - ``jitter_ms``: each packet's delay is drawn uniformly from ``delay_ms ± jitter_ms``
      (as netem's ``delay D J``), never below 0.
    - ``loss``: probability (0-1) that a packet is lost, independently of the others.
    - ``burst``: Gilbert-Elliott ``(p, r)``: per packet, the chance to go from the good
      state into a burst (``p``) and to leave it (``r``). Every packet in a burst is lost,
      so bursts last ``1/r`` packets on average and the long-run burst loss is
      ``p / (p + r)``. See :meth:`bursty`.
    - ``rate_kbps``: bandwidth cap (packets queue behind each other); ``queue_ms``: how
      much may queue before packets are dropped at the tail.
    - ``outage``: ``(every_s, length_s)``: everything is dropped for ``length_s`` at the
      start of each ``every_s`` period, counted from when the impairment is set. One-off
      outages are started at run time (:meth:`ImpairedLink.outage`).
    - ``seed``: for the loss and jitter draws, so that a run can be repeated.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    burst: tuple[float, float] | None = None
    rate_kbps: float | None = None
    queue_ms: float = 500.0
    outage: tuple[float, float] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        def fail(what: str) -> None:
            raise ValueError(f"Impairment: {what} (got {self!r})")

        if self.delay_ms < 0 or self.jitter_ms < 0:
            fail("delay_ms and jitter_ms must be >= 0")
        if not 0.0 <= self.loss <= 1.0:
            fail("loss is a probability, 0-1")
        if self.burst is not None:
            p, r = self.burst
            if not (0.0 <= p <= 1.0 and 0.0 < r <= 1.0):
                fail("burst=(p, r) needs 0 <= p <= 1 and 0 < r <= 1")
        if self.rate_kbps is not None and self.rate_kbps <= 0:
            fail("rate_kbps must be > 0 (None: no cap)")
        if self.queue_ms <= 0:
            fail("queue_ms must be > 0")
        if self.outage is not None:
            every, length = self.outage
            if not 0 < length <= every:
                fail("outage=(every_s, length_s) needs 0 < length_s <= every_s")

    @classmethod
    def bursty(cls, loss: float, mean_burst: float, **kw: Any) -> Impairment:
        """Burst loss of ``loss`` in the long run, in bursts of ``mean_burst`` packets."""
        if not 0 < loss < 1 or mean_burst < 1:
            raise ValueError("bursty() needs 0 < loss < 1 and mean_burst >= 1")
        r = 1.0 / mean_burst
        return cls(burst=(loss * r / (1.0 - loss), r), **kw)

    @property
    def expected_loss(self) -> float:
        """The long-run share of packets lost to ``loss`` and ``burst`` together."""
        burst = 0.0
        if self.burst is not None:
            p, r = self.burst
            burst = p / (p + r) if p + r > 0 else 0.0
        return 1.0 - (1.0 - self.loss) * (1.0 - burst)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Impairment:
        data = dict(data)
        for key in ("burst", "outage"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


CLEAN = Impairment()

#: Why a packet was dropped, as counted by :class:`Direction`.
DROP_REASONS = ("outage", "loss", "burst", "queue")


class Direction:
    """Applies an :class:`Impairment` to the packets of one direction, in arrival order."""

    def __init__(self, impairment: Impairment = CLEAN, now: float = 0.0) -> None:
        self.counters: dict[str, int] = {"in": 0, "out": 0, "bytes": 0,
                                         **{k: 0 for k in DROP_REASONS}}
        self._link_free = 0.0  # when the capped link has sent what is queued
        self._outage = (0.0, -1.0)  # a one-off outage: (from, until)
        self.set(impairment, now)

    def set(self, impairment: Impairment, now: float) -> None:
        """Use ``impairment`` for packets arriving from now on (a burst in progress ends)."""
        self.impairment = impairment
        self._rng = random.Random(impairment.seed)
        self._bad = False
        self._since = now

    def start_outage(self, now: float, length_s: float) -> None:
        """Drop everything from ``now`` for ``length_s`` (extends one in progress)."""
        start, until = self._outage
        if not start <= now < until:
            start = now
        self._outage = (start, max(until, now + length_s))

    def _in_outage(self, now: float) -> bool:
        start, until = self._outage
        if start <= now < until:
            return True
        outage = self.impairment.outage
        if outage is None:
            return False
        every, length = outage
        return (now - self._since) % every < length

    def _lost(self) -> str | None:
        imp = self.impairment
        if imp.burst is not None:  # the state moves on with every packet
            p, r = imp.burst
            self._bad = (self._rng.random() >= r) if self._bad else (self._rng.random() < p)
            if self._bad:
                return "burst"
        if imp.loss and self._rng.random() < imp.loss:
            return "loss"
        return None

    def departure(self, size: int, now: float) -> float | None:
        """When a ``size``-byte packet arriving at ``now`` leaves, or None if dropped."""
        imp = self.impairment
        self.counters["in"] += 1
        reason = "outage" if self._in_outage(now) else self._lost()
        start = now
        if reason is None and imp.rate_kbps is not None:
            start = max(now, self._link_free)
            if start - now > imp.queue_ms / 1000.0:
                reason = "queue"
            else:
                self._link_free = start + size * 8 / (imp.rate_kbps * 1000.0)
                start = self._link_free
        if reason is not None:
            self.counters[reason] += 1
            return None
        delay = imp.delay_ms
        if imp.jitter_ms:
            delay += self._rng.uniform(-imp.jitter_ms, imp.jitter_ms)
        self.counters["out"] += 1
        self.counters["bytes"] += size
        return start + max(0.0, delay) / 1000.0

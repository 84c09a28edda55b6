"""Where packets fall in the speaker's pulls, and how much time the last of them gets.

The speaker pulls P samples at a time; a member's packets hold F samples each. A pull
needs every packet that starts in it at once, so of the packets a pull holds, the last
one has the least time to come. Packet starts fall on a grid of ``g = gcd(F, P)``
within a pull: the last one starts ``phase + P - g`` into it, where ``phase`` is a
packet's start modulo g. If a packet is heard ``base`` ms after its earliest possible
arrival (the same for every packet while the delay holds), the least time any packet
gets, its *lead*, is ``base - (phase + P - g)``.

- 20 ms packets, 20 ms pulls: g = P, the lead is the packet's own due.
- 10 ms packets, 20 ms pulls: the second packet of each pull has 10 ms less than the
  first; the delay must cover that.
- 20 ms packets, 10 ms pulls: g = P; a packet is needed by the pull it starts in.

Removing p samples (time-stretching) moves ``base`` and the phase back by p; once the
phase passes 0 one more packet falls into each pull and the lead drops by g. Adding p
moves both forward.
"""

from __future__ import annotations

import math
from collections import deque


def grid(frame: int, pull: int) -> int:
    """The spacing (samples) of packet starts within a pull."""
    return math.gcd(frame, pull) or pull


def lead_ms(base_ms: float, phase: int, pull: int, step: int, rate: int) -> float:
    """The least time (ms) a packet gets, for a delay ``base_ms`` and a packet start at
    ``phase`` (samples, modulo ``step``, the grid)."""
    return base_ms - ((phase % step) + pull - step) * 1000 / rate


def first_pull_wait_ms(frame: int, pull: int, rate: int) -> float:
    """How much longer than its target the first packet waits, so that every packet
    the first pull needs is there."""
    return (pull - grid(frame, pull)) * 1000 / rate


class PullClock:
    """When each pull was due on the sound card's own schedule.

    The speaker's thread pulls once per period, but on a busy box it wakes late now and
    then; the card still plays on its schedule from what its ring holds, so a late pull
    is heard when it was due, not when it came, and the pulls after it catch up. Each
    pull is due one pull after the one before, or now if that is earlier (an early pull
    sets the schedule). The schedule creeps ``creep`` of a pull ahead each time, so a
    card slower than this clock is followed and a card whose schedule moved (its ring
    ran dry) is caught up with in a few dozen pulls. A pull more than ``most_ms`` behind
    the schedule starts it again: the speaker rested, or stalled longer than its ring.

    A card that takes its pulls in bursts (a sound server's buffer: several periods at
    once, then a pause) has no such schedule: the first pull of a burst would look late
    when it is not. A pull that comes less than half a pull after one that was on time
    shows that (after a late pull the next ones come at once too, but behind the
    schedule); while the last ``BURSTS`` of them came within ``hold_s``, every pull is
    taken as due when it comes.
    """

    BURSTS = 3

    def __init__(self, rate: int, *, creep: float = 0.05, most_ms: float = 60.0,
                 hold_s: float = 10.0) -> None:
        self.rate = rate
        self.creep = creep
        self.most_s, self.hold_s = most_ms / 1000, hold_s
        self._due: float | None = None  # the schedule (kept through bursts too)
        self._last = 0  # samples the last pull took
        self._came = float("-inf")  # when the last pull came
        self._early: deque[float] = deque(maxlen=self.BURSTS)

    def due(self, now: float, count: int) -> float:
        """The time the pull of ``count`` samples that comes at ``now`` was due."""
        due = now
        if self._due is not None:
            step = self._last / self.rate
            if now - self._came < step / 2 and self._came - self._due < 1e-4:
                self._early.append(now)
            due = min(now, self._due + step * (1 + self.creep))
            if due < now - self.most_s:
                due = now
        self._due, self._last, self._came = due, count, now
        early = self._early
        if len(early) == self.BURSTS and now - early[0] < self.hold_s:
            return now
        return due

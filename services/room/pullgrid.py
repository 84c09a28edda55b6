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

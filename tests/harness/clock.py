"""A clock the test sets by hand: pass it where code takes a ``clock`` callable, then move
``now`` to where the scenario needs it."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

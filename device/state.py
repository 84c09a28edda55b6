"""The appliance's top-level state, with every transition logged and published."""

from __future__ import annotations

import logging
from collections.abc import Callable

from drivers.common.states import ApplianceState

__all__ = ["ApplianceState", "StateMachine"]

log = logging.getLogger(__name__)


class StateMachine:
    def __init__(
        self,
        initial: ApplianceState = ApplianceState.IDLE,
        on_change: Callable[[ApplianceState, ApplianceState, str], None] | None = None,
    ) -> None:
        self._state = initial
        self._on_change = on_change
        self.reason = ""

    @property
    def state(self) -> ApplianceState:
        return self._state

    def set(self, new: ApplianceState, reason: str = "") -> None:
        old = self._state
        if new == old and reason == self.reason:
            return
        self._state = new
        self.reason = reason
        if new != old:
            log.info("state %s -> %s%s", old, new, f" ({reason})" if reason else "")
        if self._on_change is not None:
            self._on_change(old, new, reason)

    def __repr__(self) -> str:
        return f"<StateMachine {self._state}>"

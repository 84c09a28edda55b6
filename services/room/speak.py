"""Requests to speak: a listener asks to publish, a moderator answers, or it times out.

The listener broadcasts ``edgeroom.speak-request`` ``{"request", "timeout_ms"}``; every
member shows it until it is answered or ``timeout_ms`` has passed. A member with the
room secret answers with a signed ``edgeroom.speak-answer`` ``{"id", "request",
"accepted"}``; the listener it names becomes a publisher without leaving the room. A
signed ``edgeroom.speak-revoke`` ``{"id"}`` sends a publisher back to listening. When
this box's own request ends (answered, withdrawn or timed out), its hand is lowered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: The longest a request may ask to wait (a request asking more is cut to this).
TIMEOUT_MAX_MS = 300_000


@dataclass
class PendingRequest:
    member_id: str
    request: str
    display: str
    timeout_ms: int
    timer: asyncio.TimerHandle | None = None

    def view(self) -> dict[str, Any]:
        return {"id": self.member_id, "display": self.display, "request": self.request,
                "timeout_s": self.timeout_ms / 1000}


Expired = Callable[[PendingRequest], None]


class SpeakRequests:
    """The requests this member knows of: its own (at most one) and others'."""

    def __init__(self, on_expired: Expired) -> None:
        self._on_expired = on_expired
        self.own: PendingRequest | None = None
        self.others: dict[str, PendingRequest] = {}

    def __repr__(self) -> str:
        own = self.own.request if self.own else None
        return f"<SpeakRequests own={own} others={sorted(self.others)}>"

    def _arm(self, pending: PendingRequest) -> None:
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(pending.timeout_ms / 1000, self._expire, pending)

    def _expire(self, pending: PendingRequest) -> None:
        if self.own is pending:
            self.own = None
        elif self.others.get(pending.member_id) is pending:
            del self.others[pending.member_id]
        else:
            return
        self._on_expired(pending)

    def start_own(self, local_id: str, display: str, timeout_ms: int) -> PendingRequest:
        """Our own request (a new id), timing out after ``timeout_ms``."""
        self.cancel_own()
        self.own = PendingRequest(local_id, secrets.token_hex(6), display, timeout_ms)
        self._arm(self.own)
        return self.own

    def cancel_own(self) -> PendingRequest | None:
        own, self.own = self.own, None
        if own is not None and own.timer is not None:
            own.timer.cancel()
        return own

    def take_own_answer(self, request: Any) -> PendingRequest | None:
        """Our pending request if ``request`` is its id (it is then no longer pending)."""
        if self.own is None or request != self.own.request:
            return None
        return self.cancel_own()

    def add_other(self, member_id: str, request: str, display: str,
                  timeout_ms: int) -> PendingRequest:
        self.drop_other(member_id)
        pending = PendingRequest(member_id, request, display,
                                 max(1, min(TIMEOUT_MAX_MS, timeout_ms)))
        self.others[member_id] = pending
        self._arm(pending)
        return pending

    def drop_other(self, member_id: str, request: Any = None) -> PendingRequest | None:
        """Forget ``member_id``'s request (only if it is ``request``, when given)."""
        pending = self.others.get(member_id)
        if pending is None or (request is not None and pending.request != request):
            return None
        del self.others[member_id]
        if pending.timer is not None:
            pending.timer.cancel()
        return pending

    def clear(self) -> None:
        self.cancel_own()
        for member_id in list(self.others):
            self.drop_other(member_id)

    def views(self) -> list[dict[str, Any]]:
        return [p.view() for p in self.others.values()]

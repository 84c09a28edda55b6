"""Login sessions and the login rate limit, both in memory.

Sessions (ETSI EN 303 645 5.5-5): a random token in an HttpOnly, SameSite=Strict cookie,
a separate CSRF token the page sends back in ``X-CSRF-Token``, a new token at every
login, 30 minutes of idle expiry, and every session dropped when the password changes.

Rate limit (5.1-5): 5 failed logins in 10 minutes from one address lock that address
out for 10 minutes (429 with ``Retry-After``), and 20 failed logins in 10 minutes from
all addresses together refuse every login until the oldest of them is 10 minutes old.
An attempt is reserved before its password is checked and counts as a failure while the
check runs, so a burst of concurrent guesses gets no more checks than the limit allows.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

IDLE_TIMEOUT = 30 * 60.0
MAX_SESSIONS = 32
FAILURE_LIMIT = 5
FAILURE_WINDOW = 10 * 60.0
LOCKOUT = 10 * 60.0
GLOBAL_FAILURE_LIMIT = 20
MAX_TRACKED_ADDRESSES = 4096

Clock = Callable[[], float]


@dataclass
class Session:
    token: str
    csrf_token: str
    remote: str
    created: float
    last_seen: float

    def csrf_ok(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.csrf_token.encode())


class SessionStore:
    """Live sessions by token, oldest evicted first past :data:`MAX_SESSIONS`."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT, clock: Clock = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __repr__(self) -> str:
        return f"<SessionStore {len(self._sessions)} sessions>"

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, remote: str, replaces: str | None = None) -> Session:
        """A new session (the old one, if any, is dropped: the token rotates at login)."""
        if replaces:
            self._sessions.pop(replaces, None)
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), remote, now, now)
        self._sessions[session.token] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token`` (touching it), or ``None``."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.idle_timeout:
            del self._sessions[token]
            return None
        session.last_seen = now
        self._sessions.move_to_end(token)
        return session

    def alive(self, token: str | None) -> bool:
        """Whether ``token`` is a live session, without counting this as activity."""
        session = self._sessions.get(token) if token else None
        return session is not None and self._clock() - session.last_seen <= self.idle_timeout

    def drop(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def clear(self) -> int:
        """Drop every session (password changed); returns how many there were."""
        count = len(self._sessions)
        self._sessions.clear()
        return count


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    pending: int = 0  # attempts reserved whose password check has not ended yet


class LoginLimiter:
    """Counts failed logins per address and in total (for the login and ``/metrics``)."""

    def __init__(self, limit: int = FAILURE_LIMIT, window: float = FAILURE_WINDOW,
                 lockout: float = LOCKOUT, global_limit: int = GLOBAL_FAILURE_LIMIT,
                 clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.global_limit = global_limit
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._global: deque[float] = deque()  # when each recent failure happened
        self._global_pending = 0
        self.refused = 0  # attempts refused without a check

    def __repr__(self) -> str:
        return (f"<LoginLimiter {len(self._records)} addresses, "
                f"{len(self._global)}/{self.global_limit} recent failures>")

    def _prune(self, record: _Record | None, now: float) -> None:
        while self._global and now - self._global[0] > self.window:
            self._global.popleft()
        while record is not None and record.failures and now - record.failures[0] > self.window:
            record.failures.popleft()

    def _record(self, remote: str) -> _Record:
        record = self._records.pop(remote, None) or _Record()
        self._records[remote] = record  # most recent last
        for key in list(self._records)[:max(0, len(self._records) - MAX_TRACKED_ADDRESSES)]:
            if self._records[key].pending == 0:
                del self._records[key]
        return record

    def retry_after(self, remote: str) -> int:
        """Seconds until ``remote`` may try again (0: it may try now)."""
        now = self._clock()
        record = self._records.get(remote)
        self._prune(record, now)
        left = 0.0
        if record is not None:
            left = record.locked_until - now
            if left <= 0 and len(record.failures) + record.pending >= self.limit:
                left = 1.0  # the checks in flight decide; ask again shortly
        if len(self._global) + self._global_pending >= self.global_limit:
            oldest = self.window - (now - self._global[0]) if self._global else 1.0
            left = max(left, oldest, 1.0)
        return max(1, int(left + 0.999)) if left > 0 else 0

    def reserve(self, remote: str) -> int:
        """Take one attempt for ``remote`` before its password is checked.

        Returns 0 when reserved (call :meth:`settle` once the check ended), else the
        seconds to wait (nothing was reserved).
        """
        retry = self.retry_after(remote)
        if retry:
            self.refused += 1
            return retry
        self._record(remote).pending += 1
        self._global_pending += 1
        return 0

    def settle(self, remote: str, ok: bool) -> int:
        """End a reserved attempt; returns the lockout in seconds it caused (0: none)."""
        self._global_pending = max(0, self._global_pending - 1)
        record = self._records.get(remote)
        if record is not None:
            record.pending = max(0, record.pending - 1)
        if ok:
            self.success(remote)
            return 0
        return self.failure(remote)

    def failure(self, remote: str) -> int:
        """Record a failure; returns the lockout in seconds it caused (0: none yet)."""
        now = self._clock()
        record = self._record(remote)
        self._prune(record, now)
        record.failures.append(now)
        self._global.append(now)
        if len(record.failures) >= self.limit:
            record.locked_until = now + self.lockout
            record.failures.clear()
            return int(self.lockout)
        return 0

    def success(self, remote: str) -> None:
        record = self._records.get(remote)
        if record is not None:
            record.failures.clear()
            record.locked_until = 0.0
            if record.pending == 0:
                del self._records[remote]

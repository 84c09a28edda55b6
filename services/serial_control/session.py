"""One serial control session: input lines in, reply lines out, through the dispatcher.

The session knows nothing of ports or threads: :meth:`ControlSession.handle` takes one
input line and returns the reply lines, so the whole protocol can be driven directly
(as the property tests do) as well as over a serial port (see ``server``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from services.serial_control import (
    room_commands,  # noqa: F401  (registers its commands)
    screen_commands,  # noqa: F401  (registers LAYOUT, PIN)
)
from services.serial_control.commands import COMMANDS
from services.serial_control.format import ProtocolError, decode_line, err, quote

log = logging.getLogger(__name__)

Dispatch = Callable[[str, Mapping[str, Any], str], Awaitable[dict[str, Any]]]
StatusFn = Callable[[], Mapping[str, Any]]


class TokenBucket:
    """``rate`` lines a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ControlSession:
    def __init__(self, dispatch: Dispatch, status: StatusFn, version: str, *,
                 max_line: int = 256, rate: float = 20.0, burst: int = 40,
                 clock: Callable[[], float] = time.monotonic, source: str = "serial") -> None:
        self.dispatch = dispatch
        self.status = status
        self.version = version
        self.max_line = max_line
        self.source = source
        self.events_enabled = True
        self.bucket = TokenBucket(rate, burst, clock)
        self._limited = False  # inside a run of discarded lines
        self.lines = 0
        self.errors = 0
        self.discarded = 0

    def __repr__(self) -> str:
        return f"<ControlSession lines={self.lines} errors={self.errors}>"

    async def handle(self, raw: bytes, overflow: bool = False) -> list[str]:
        """The reply lines for one input line (without its terminator); never raises
        except ``CancelledError``."""
        if not overflow and not raw.strip(b" \t"):
            return []  # blank lines are ignored
        self.lines += 1
        if not self.bucket.take():
            self.discarded += 1
            if self._limited:
                return []
            self._limited = True
            self.errors += 1
            return [err("RATE_LIMITED", f"more than {self.bucket.rate:g} lines a second; "
                                        "lines are discarded until the rate drops")]
        self._limited = False
        try:
            if overflow:
                raise ProtocolError("LINE_TOO_LONG", f"lines are limited to {self.max_line} "
                                                     "bytes; the line was discarded")
            return await self._run(decode_line(raw))
        except asyncio.CancelledError:
            raise
        except ProtocolError as exc:
            self.errors += 1
            return [err(exc.code, exc.reason)]
        except Exception as exc:
            self.errors += 1
            code = getattr(exc, "code", None)
            if isinstance(code, str):  # ActionError, RoomError: stable codes
                return [err(code, getattr(exc, "message", None) or str(exc))]
            log.exception("serial command failed")
            return [err("INTERNAL", f"{type(exc).__name__}: {exc}")]

    async def _run(self, text: str) -> list[str]:
        stripped = text.strip(" \t")
        name, _, rest = stripped.partition(" ")
        if "\t" in name:
            name, _, tail = name.partition("\t")
            rest = f"{tail} {rest}"
        cmd = COMMANDS.get(name.upper())
        if cmd is None:
            raise ProtocolError("UNKNOWN_COMMAND", f"unknown command {quote(name[:32])}; "
                                                   "HELP lists the commands")
        args = rest.split()
        too_many = cmd.max_args is not None and len(args) > cmd.max_args
        if len(args) < cmd.min_args or too_many:
            raise ProtocolError("BAD_ARGUMENT", f"usage: {cmd.usage}")
        return await cmd.handler(self, args, rest.strip(" \t"))

    async def act(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        return await self.dispatch(action, args, self.source)

    def controls(self) -> Mapping[str, Any]:
        room = self.status().get("room") or {}
        controls = room.get("controls")
        if not controls:
            raise ProtocolError("UNAVAILABLE", "the room client is not running")
        return controls

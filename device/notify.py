"""The systemd notify protocol, spoken directly on ``$NOTIFY_SOCKET``.

``READY=1`` once up, ``STATUS=`` on state changes, and ``WATCHDOG=1`` at half the
watchdog interval from a task that pings only while the event loop and the subsystems
show progress, so a hung loop or a wedged subsystem stops the pings and systemd
restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    """Sends datagrams to the service manager; a no-op outside systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        self._sock: socket.socket | None = None
        if address:
            # A leading "@" names a socket in the abstract namespace.
            self.address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        if self._sock is None or self.address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as exc:
            log.warning("notify %s failed: %s", fields, exc)
            return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when not requested."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.01)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None


async def watchdog_loop(
    notifier: Notifier,
    interval: float,
    healthy: Callable[[], bool] = lambda: True,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` while the loop is responsive and healthy.

    Lateness is the probe: if this task wakes up much later than asked, the loop was
    blocked, and that round is not pinged.
    """
    while True:
        asked = time.monotonic()
        await asyncio.sleep(interval)
        late = time.monotonic() - asked - interval
        if late > interval:
            log.warning("event loop was blocked for %.1f s; watchdog ping withheld", late)
            continue
        if not healthy():
            log.warning("a subsystem shows no progress; watchdog ping withheld")
            continue
        notifier.send("WATCHDOG=1")

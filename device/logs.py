"""Logging set-up: plain lines on stdout for journald (which adds the timestamps)."""

from __future__ import annotations

import collections
import logging
import sys
from typing import TextIO

from drivers.common.redact import RedactingFormatter

FORMAT = "%(levelname)s %(name)s: %(message)s"


class RingHandler(logging.Handler):
    """Keeps the last lines in memory for the config page's log tail."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(RedactingFormatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.handleError(record)


RING = RingHandler()


def setup(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure the package loggers (never the root logger's level for libraries).

    The service logs to stdout (journald); one-shot commands log to stderr so that what
    they print on stdout stays clean.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(RedactingFormatter(FORMAT))  # no URL credentials in the journal
    for name in ("device", "drivers", "services"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler, RING]
        logger.setLevel(level.upper())
        logger.propagate = False
    # Third-party libraries: warnings and worse only.
    for name in ("aiortc", "aioice", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # ...and the one ICE event that ends a call: the far end stopped confirming consent
    # (RFC 7675), so aioice closes the connection and the room rebuilds it.
    ice = logging.getLogger("aioice.ice")
    ice.handlers[:] = [handler, RING]
    ice.setLevel(logging.INFO)
    ice.filters[:] = [_consent_or_worse]
    ice.propagate = False


def _consent_or_worse(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or "Consent to send expired" in record.getMessage()

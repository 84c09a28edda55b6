"""Credentials in URLs never leave the appliance: one redaction for logs and events.

A URL's user info (``rtmp://user:pass@host/...``) and query string, and the stream key of
an RTMP URL (its last path part: ``rtmp://host/live/KEY``), are replaced by ``***``
wherever they appear in text. Every log line (journal and the page's log tail) passes
through :class:`RedactingFormatter`, and every event on the bus (the page's event stream,
the serial line) through :func:`redact`, so a URL given once to an action (a one-off
stream URL) or quoted in an error message is hidden whatever code logged or published it.
Config secrets (the PIN, tokens, ``stream.rtmp_url``) are also masked by value where
the config is known (the page's status, events and log tail).
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: What a secret value is shown as (in the config page, the status and the log).
REDACTED = "***"

MASK = "***"

#: scheme://[userinfo@]host[/path][?query] inside any text (quotes end a URL).
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<userinfo>[^\s'\"<>/@]*@)?"
                  r"(?P<host>[^\s'\"<>/?#]*)(?P<path>/[^\s'\"<>?#]*)?(?P<query>\?[^\s'\"<>#]*)?")
_KEYED_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpt", "rtmpe", "srt", "rtsp"})


def _mask_url(match: re.Match[str]) -> str:
    scheme = match["scheme"]
    userinfo = f"{MASK}@" if match["userinfo"] else ""
    path = match["path"] or ""
    if scheme.lower() in _KEYED_SCHEMES and path.count("/") >= 2:
        path = path.rsplit("/", 1)[0] + "/" + MASK  # rtmp://host/app/KEY: the key
    query = "?" + MASK if match["query"] else ""
    return f"{scheme}://{userinfo}{match['host']}{path}{query}"


def redact_text(text: str) -> str:
    """``text`` with every URL's credentials and stream key masked."""
    if "://" not in text:
        return text
    return _URL.sub(_mask_url, text)


def redact(value: Any) -> Any:
    """:func:`redact_text` applied to every string in a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class RedactingFormatter(logging.Formatter):
    """Formats a record (message and traceback), then masks URL credentials in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))

"""Moderation commands signed with an HMAC keyed by the room secret.

Janus's TextRoom does not authenticate what members send, so a moderation command
(an answer to a request to speak, a room status, a chat mute) carries its own proof:

``sig = hex(HMAC-SHA256(room.secret, canonical))`` where ``canonical`` is the compact
JSON (keys sorted, no spaces, UTF-8, non-ASCII kept) of the command's payload without
``sig`` plus ``"cmd"`` and ``"room"``. The payload carries ``ts`` (Unix time in
milliseconds), ``nonce`` (16 hex digits, new per command) and ``by`` (the signer's
member id). A live command is honoured when the signature matches, ``by`` is the member
the TextRoom says sent it, ``ts`` is within :data:`MAX_SKEW_MS` of our clock, and the
nonce was not seen before: a command replayed later, or by someone else, is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: How far a live command's timestamp may be from our clock (boxes keep NTP time).
MAX_SKEW_MS = 60_000
#: How many nonces are remembered (more than a room sends within the skew window).
NONCES_KEPT = 4096


def canonical(cmd: str, room: int | str, payload: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in payload.items() if k != "sig"}
    body["cmd"] = cmd
    # one room, however a box names it: 1234 and "1234" (a server with string ids)
    body["room"] = int(room) if isinstance(room, str) and room.isdigit() else room
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def signature(secret: str, cmd: str, room: int | str, payload: Mapping[str, Any]) -> str:
    return hmac.new(secret.encode("utf-8"), canonical(cmd, room, payload),
                    hashlib.sha256).hexdigest()


def sign(secret: str, cmd: str, room: int | str, payload: Mapping[str, Any], by: str,
         now_ms: int | None = None) -> dict[str, Any]:
    """``payload`` with ``ts``, ``nonce``, ``by`` and ``sig`` added."""
    out = dict(payload)
    out["ts"] = int(time.time() * 1000) if now_ms is None else now_ms
    out["nonce"] = secrets.token_hex(8)
    out["by"] = by
    out["sig"] = signature(secret, cmd, room, out)
    return out


class Verifier:
    """Checks signed commands for one room; remembers nonces to refuse replays."""

    def __init__(self, secret: str | None, room: int | str,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._secret = secret
        self.room = room
        self._clock_ms = clock_ms
        self._nonces: OrderedDict[str, None] = OrderedDict()
        self.refused = 0

    def __repr__(self) -> str:
        return f"<Verifier room={self.room} keyed={self._secret is not None} " \
               f"refused={self.refused}>"

    @property
    def keyed(self) -> bool:
        return self._secret is not None

    def authentic(self, cmd: str, payload: Any) -> bool:
        """The signature is right (whatever its age): for state forwarded by others."""
        if self._secret is None or not isinstance(payload, dict):
            return False
        sig = payload.get("sig")
        if not isinstance(sig, str) or not isinstance(payload.get("ts"), int):
            return False
        try:
            expected = signature(self._secret, cmd, self.room, payload)
        except (TypeError, ValueError):
            return False
        return hmac.compare_digest(expected, sig)

    def live(self, cmd: str, payload: Any, sender: str) -> str | None:
        """None if ``payload`` is a fresh, authentic command sent by its signer, else why
        it is refused (logged by the caller)."""
        reason = self._check(cmd, payload, sender)
        if reason is not None:
            self.refused += 1
        return reason

    def _check(self, cmd: str, payload: Any, sender: str) -> str | None:
        if self._secret is None:
            return "no room.secret here to check it with"
        if not isinstance(payload, dict) or "sig" not in payload:
            return "unsigned"
        if not self.authentic(cmd, payload):
            return "bad signature"
        if payload.get("by") != sender:
            return f"signed by {payload.get('by')!r:.40} but sent by {sender!r:.40}"
        if abs(self._clock_ms() - int(payload["ts"])) > MAX_SKEW_MS:
            return "too old (or the clocks disagree by over a minute)"
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            return "no nonce"
        if nonce in self._nonces:
            return "replayed"
        self._nonces[nonce] = None
        while len(self._nonces) > NONCES_KEPT:
            self._nonces.popitem(last=False)
        return None

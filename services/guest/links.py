"""Guest links: signed, expiring, revocable tokens that grant room membership only.

A link carries ``<id>.<expiry>.<signature>``: a random id, the expiry (Unix seconds) and
an HMAC-SHA256 of both under a key kept in the state dir (``guest-links.key``, made on
first use, mode 0600). The links made are listed in ``guest-links.json`` (id, label,
created, expiry, revoked) so the admin can see and revoke them; a link whose id is not
in the list (the list was reset) or is revoked is refused, as is one past its expiry or
with a signature that does not match. Verifying costs one HMAC and a dict lookup.

The file methods block (they write and fsync): call them from a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drivers.errors import EdgeroomError

log = logging.getLogger(__name__)

KEY_FILE = "guest-links.key"
LIST_FILE = "guest-links.json"
MAX_LINKS = 200
MAX_TTL = 30 * 24 * 3600
LABEL_MAX = 64


class GuestLinkError(EdgeroomError, PermissionError):
    """A guest link was refused; ``code`` says why (stable, machine-readable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class GuestLink:
    id: str
    label: str
    created: float
    expires: float
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _write(path: Path, data: bytes) -> None:
    """Atomically: a temp file in the same dir, fsync, rename, fsync the dir."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


class GuestLinks:
    """The guest links of one box (``state_dir``); thread-safe."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self._clock = clock
        self._lock = threading.Lock()
        self._key: bytes | None = None
        self._links: dict[str, GuestLink] | None = None

    def __repr__(self) -> str:
        return f"<GuestLinks {len(self._links or {})} links>"

    # -- storage --------------------------------------------------------------------------

    def _load(self) -> tuple[bytes, dict[str, GuestLink]]:
        if self._key is None:
            key_path = self.state_dir / KEY_FILE
            try:
                self._key = bytes.fromhex(key_path.read_text().strip())
            except FileNotFoundError:
                self.state_dir.mkdir(parents=True, exist_ok=True)
                self._key = secrets.token_bytes(32)
                _write(key_path, self._key.hex().encode())
            except ValueError as exc:
                raise GuestLinkError("BAD_KEY", f"{key_path}: not a key ({exc})") from None
        if self._links is None:
            try:
                raw = json.loads((self.state_dir / LIST_FILE).read_text())
                self._links = {d["id"]: GuestLink(**d) for d in raw}
            except FileNotFoundError:
                self._links = {}
            except (ValueError, TypeError, KeyError) as exc:
                log.error("%s is damaged (%s): every guest link is refused until one is "
                          "made", LIST_FILE, exc)
                self._links = {}
        return self._key, self._links

    def _save(self, links: dict[str, GuestLink]) -> None:
        data = json.dumps([link.to_dict() for link in links.values()], indent=1)
        _write(self.state_dir / LIST_FILE, data.encode())

    def _sign(self, key: bytes, link_id: str, expires: int) -> str:
        mac = hmac.new(key, f"{link_id}.{expires}".encode(), hashlib.sha256).digest()
        return _b64(mac)

    # -- the admin's operations (blocking) ------------------------------------------------

    def create(self, ttl_seconds: int, label: str = "") -> tuple[GuestLink, str]:
        """A new link valid for ``ttl_seconds``: (its record, its token)."""
        if not 60 <= ttl_seconds <= MAX_TTL:
            raise GuestLinkError("BAD_ARGUMENT",
                                 f"ttl_seconds must be 60-{MAX_TTL}, got {ttl_seconds}")
        if len(label) > LABEL_MAX or any(ord(c) < 32 for c in label):
            raise GuestLinkError("BAD_ARGUMENT", f"label: at most {LABEL_MAX} printable "
                                                 "characters")
        with self._lock:
            key, links = self._load()
            now = self._clock()
            for old in [i for i, link in links.items() if link.expires < now]:
                del links[old]  # expired links need no record
            if len(links) >= MAX_LINKS:
                raise GuestLinkError("TOO_MANY_GUEST_LINKS", f"at most {MAX_LINKS} guest links; "
                                                       "revoke some first")
            expires = int(now + ttl_seconds)
            link = GuestLink(_b64(secrets.token_bytes(12)), label, round(now, 3), expires)
            links[link.id] = link
            self._save(links)
        log.info("guest link %s (%s) made, valid until %d", link.id, label or "-", expires)
        return link, f"{link.id}.{expires}.{self._sign(key, link.id, expires)}"

    def revoke(self, link_id: str) -> GuestLink:
        with self._lock:
            _, links = self._load()
            link = links.get(link_id)
            if link is None:
                raise GuestLinkError("NO_SUCH_GUEST_LINK", f"no guest link {link_id[:32]!r}")
            link.revoked = True
            self._save(links)
        log.info("guest link %s revoked", link_id)
        return link

    def list(self) -> list[GuestLink]:
        with self._lock:
            _, links = self._load()
            return sorted(links.values(), key=lambda link: link.created)

    # -- checking a guest ---------------------------------------------------------------

    def verify(self, token: str | None) -> GuestLink:
        """The link ``token`` stands for, or :class:`GuestLinkError` saying why not."""
        if not token or len(token) > 200 or token.count(".") != 2:
            raise GuestLinkError("BAD_LINK", "not a guest link")
        link_id, expires_text, signature = token.split(".")
        if not expires_text.isdigit():
            raise GuestLinkError("BAD_LINK", "not a guest link")
        expires = int(expires_text)
        with self._lock:
            key, links = self._load()
            link = links.get(link_id)
        if not hmac.compare_digest(signature, self._sign(key, link_id, expires)):
            raise GuestLinkError("BAD_LINK", "the guest link's signature does not match")
        if expires <= self._clock():
            raise GuestLinkError("LINK_EXPIRED", "the guest link has expired")
        if link is None or link.expires != expires:
            raise GuestLinkError("LINK_REVOKED", "the guest link is no longer valid")
        if link.revoked:
            raise GuestLinkError("LINK_REVOKED", "the guest link was revoked")
        return link

"""The config page's admin password: generated per device, stored only as a scrypt hash.

ETSI EN 303 645 provision 5.1-1: there is no universal default password. On first start
the appliance makes a random one (80 bits from :mod:`secrets`), keeps only its scrypt
hash in ``<state dir>/web-password.hash`` (mode 0600) and shows the password once in
the log. ``edgeroom password reset`` makes a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from drivers.common.atomicfile import atomic_write
from drivers.errors import EdgeroomError

log = logging.getLogger(__name__)

HASH_FILE = "web-password.hash"
#: 32 symbols (5 bits each); no i, l, o, 1 so that a password read aloud survives.
ALPHABET = "abcdefghjkmnpqrstuvwxyz023456789"
GROUPS, GROUP_LEN = 4, 4  # 16 symbols = 80 bits
MIN_LENGTH = 10
MAX_LENGTH = 256
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32  # ~16 MiB, some tens of ms on a Pi 4
_MAXMEM = 64 * 1024 * 1024


class PasswordFileError(EdgeroomError, ValueError):
    """The password hash file is unreadable or malformed."""


def generate() -> str:
    """A new random password, e.g. ``k7mq-x3fa-pw9d-rt2e`` (80 bits)."""
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LEN))
    return "-".join(symbols[i:i + GROUP_LEN] for i in range(0, len(symbols), GROUP_LEN))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), a self-describing line for the hash file."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P,
                            dklen=_DKLEN, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against a line made by :func:`hash_password`."""
    try:
        scheme, n, r, p, salt, digest = encoded.strip().split("$")
        if scheme != "scrypt":
            raise ValueError(f"unknown scheme {scheme!r}")
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=_MAXMEM)
    except (ValueError, TypeError) as exc:
        raise PasswordFileError(f"malformed password hash: {exc}") from exc
    return hmac.compare_digest(got, expected)


class PasswordFile:
    """The hash file in the state dir; notices when another process rewrites it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / HASH_FILE
        self._encoded: str | None = None
        self._stamp: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"<PasswordFile {self.path} {'set' if self.exists() else 'unset'}>"

    def exists(self) -> bool:
        return self.path.exists()

    def ensure(self) -> str | None:
        """Create a password if there is none; returns it (once) or ``None``."""
        if self.exists():
            self.load()
            return None
        password = generate()
        self.write(password)
        return password

    def write(self, password: str) -> None:
        """Store the hash of ``password`` atomically, mode 0600, keeping the file's owner."""
        owner = _owner_of(self.path) or _owner_of(self.path.parent)
        atomic_write(self.path, (hash_password(password) + "\n").encode("ascii"), mode=0o600)
        if owner is not None and os.geteuid() == 0:
            # `edgeroom password reset` run as root must leave the file readable by the
            # service user that owned it (or the state dir) before.
            try:
                os.chown(self.path, *owner)
            except OSError as exc:
                log.warning("could not give %s back to uid %d: %s", self.path, owner[0], exc)
        self.load()

    def load(self) -> str:
        try:
            st = self.path.stat()
            encoded = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise PasswordFileError(f"cannot read {self.path}: {exc}") from exc
        self._encoded = encoded
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        return encoded

    def changed(self) -> bool:
        """True (once) when the file was rewritten since it was last loaded."""
        try:
            st = self.path.stat()
        except OSError:
            was_known = self._stamp is not None
            self._encoded, self._stamp = None, None
            return was_known
        if (st.st_ino, st.st_mtime_ns, st.st_size) != self._stamp:
            self.load()
            return True
        return False

    def verify(self, password: str) -> bool:
        """Check a password (blocking: scrypt; call it in a thread)."""
        if not isinstance(password, str) or not 0 < len(password) <= MAX_LENGTH:
            return False
        encoded = self._encoded if self._encoded is not None else self.load()
        return verify_password(password, encoded)


def _owner_of(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_uid, st.st_gid


def reset(state_dir: Path) -> str:
    """Make and store a new password; returns it (the CLI prints it)."""
    password = generate()
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    PasswordFile(state_dir).write(password)
    return password

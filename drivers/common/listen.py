"""The ``host:port`` form of a listening address (``web.listen``), read the same everywhere."""

from __future__ import annotations

import ipaddress
import re
import reprlib

__all__ = ["split_listen"]

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlevel = 3


def show(value: object) -> str:
    """A short repr for messages (bounded in length and depth)."""
    return _repr.repr(value)


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (IPv4, ``[IPv6]`` or a host name) -> (host, port); ValueError if bad."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"got {show(value)}; expected host:port, e.g. 0.0.0.0:8080")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"got {show(value)}; the port must be 1-65535 (0: any free port)")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"got {show(value)}; an IPv6 address goes in brackets: [::1]:8080")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"got {show(value)}; {host} is not an IPv6 address") from None
        return host[1:-1], int(port_text)
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"got {show(value)}; {host} is not an IPv4 address") from None
    elif not _HOSTNAME.match(host):
        raise ValueError(f"got {show(value)}; {host!r} is not an address or host name")
    return host, int(port_text)

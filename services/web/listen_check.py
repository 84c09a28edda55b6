"""Whether the config page could listen on an address: checked before a change is saved.

The schema checks the form of ``web.listen`` (host:port, port 1-65535) wherever the
file is read. A change made from the page is also tried here, on this box: the host must
resolve to one of its addresses (a bind to it succeeds) and a new port must be free.
Otherwise the page would restart onto an address it cannot use and be gone until
someone edits the file by hand.
"""

from __future__ import annotations

import errno
import socket

from drivers.common.listen import split_listen


def _bind(family: int, sockaddr: tuple[object, ...]) -> OSError | None:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            return exc
    return None


def listen_problem(listen: str, current: str) -> str | None:
    """Why the page could not listen on ``listen`` (host:port), or None if it could.

    ``current`` is where it listens now: its own port counts as free. Blocking (name
    resolution, binds): call it through ``asyncio.to_thread``.
    """
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        return str(exc)
    if port == 0:
        return "port 0 (any free port) would leave the page at an unknown address"
    try:
        _, current_port = split_listen(current)
    except ValueError:
        current_port = None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{host} does not resolve to an address ({exc.strerror})"
    problem = f"{host} is not an address of this box"
    for family, _, _, _, sockaddr in infos:
        # The address alone first (any port), then the port asked for, if it is not ours.
        error = _bind(family, (sockaddr[0], 0, *sockaddr[2:]))
        if error is not None:
            if error.errno != errno.EADDRNOTAVAIL:
                problem = f"cannot listen on {host}: {error.strerror}"
            continue
        if port == current_port:
            return None
        error = _bind(family, sockaddr)
        if error is None:
            return None
        if error.errno == errno.EADDRINUSE:
            return f"port {port} is already in use on {host}"
        return f"cannot listen on {host}:{port}: {error.strerror}"
    return problem


def default_listen(sim: bool) -> str:
    return "127.0.0.1:8080" if sim else "0.0.0.0:8080"


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ValueError(f"web.listen must be host:port, got {listen!r}")
    return host.strip("[]"), int(port)

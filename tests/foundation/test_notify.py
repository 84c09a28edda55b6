"""The systemd notify protocol against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from device.notify import Notifier, watchdog_interval, watchdog_loop


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield str(path), sock
    sock.close()


def drain(sock: socket.socket) -> list[tuple[float, str]]:
    out = []
    while True:
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except BlockingIOError:
            return out


def test_ready_and_status(notify_socket) -> None:
    path, sock = notify_socket
    n = Notifier(path)
    n.ready("idle")
    n.status("in_room")
    msgs = [m for _, m in drain(sock)]
    assert msgs == ["READY=1\nSTATUS=idle", "STATUS=in_room"]


def test_abstract_socket_name() -> None:
    name = f"edgeroom-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        Notifier("@" + name).ready()
        sock.settimeout(2)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_no_socket_is_a_noop() -> None:
    n = Notifier("")
    assert not n.enabled
    assert n.send("READY=1") is False


def test_watchdog_interval_from_env() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 0.5


async def test_watchdog_cadence_and_blocked_loop(notify_socket) -> None:
    path, sock = notify_socket
    n = Notifier(path)
    task = asyncio.create_task(watchdog_loop(n, 0.05), name="watchdog")
    try:
        await asyncio.sleep(0.6)
        pings = drain(sock)
        assert all(m == "WATCHDOG=1" for _, m in pings)
        assert 6 <= len(pings) <= 13
        # Block the event loop on purpose: no ping may be sent while it is blocked.
        blocked_from = time.monotonic()
        time.sleep(0.5)  # noqa: ASYNC251 - blocking the loop is the point
        blocked_until = time.monotonic()
        during = [t for t, _ in drain(sock) if blocked_from < t < blocked_until]
        assert during == []
        await asyncio.sleep(0.02)
        # The first round after the block is withheld (the loop was late), then pings resume.
        assert [m for _, m in drain(sock)] == []
        await asyncio.sleep(0.3)
        assert len(drain(sock)) >= 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_unhealthy_subsystems_stop_pings(notify_socket) -> None:
    path, sock = notify_socket
    healthy = True
    task = asyncio.create_task(watchdog_loop(Notifier(path), 0.05, lambda: healthy))
    try:
        await asyncio.sleep(0.3)
        assert drain(sock)
        healthy = False
        await asyncio.sleep(0.06)
        drain(sock)
        await asyncio.sleep(0.3)
        assert drain(sock) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

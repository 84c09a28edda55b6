"""The systemd notify protocol against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from device.notify import Notifier, watchdog_interval, watchdog_loop
from tests.drivers.conftest import AsoundRc, asoundrc  # noqa: F401  (fixture)
from tests.harness.alsa_mic import FifoMic
from tests.harness.polling import wait_until

T = 5.0


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


# -- health probes: a wedged driver thread withholds the pings -------------------------

async def _collect(sock: socket.socket, into: list[tuple[float, str]]) -> None:
    """Receive times of the datagrams, taken as they arrive (every 10 ms)."""
    while True:
        into.extend(drain(sock))
        await asyncio.sleep(0.01)


async def test_wedged_mic_thread_stops_the_watchdog_while_the_loop_runs(
        notify_socket, asoundrc: AsoundRc, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from device import probes
    from device.app import Appliance
    from device.config import Config
    from services.media.service import MediaService

    path, sock = notify_socket
    fifo = tmp_path / "mic.fifo"
    feeder = FifoMic(fifo)
    asoundrc.file_pcm("wdmic", infile=fifo)
    asoundrc.file_pcm("wdspk")
    grace = 1.0
    interval = 0.1
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(interval * 2_000_000)))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setitem(probes.GRACE, "mic", grace)
    config = Config().replace({
        "room": {"server": "ws://127.0.0.1:9", "auto_join": False},
        "video": {"enabled": False},
        "audio": {"backend": "alsa", "mic_device": "wdmic", "speaker_device": "wdspk",
                  "aec": False, "agc": False, "noise_suppression": False},
        "web": {"listen": "127.0.0.1:0"}})
    app = Appliance(config, tmp_path / "edgeroom.toml", tmp_path / "state", sim=True)
    pings: list[tuple[float, str]] = []
    collector = asyncio.create_task(_collect(sock, pings), name="test:collect")
    task = asyncio.create_task(app.run(), name="test:appliance")
    try:
        await wait_until(lambda: any(m.startswith("READY=1") for _, m in pings), 10, 0.02)
        media = app.media
        assert isinstance(media, MediaService) and media.mic is not None
        tee = media.mic
        await asyncio.wait_for(tee.acquire("test"), T)  # as the page's level meter does
        await asyncio.sleep(1.0)
        assert tee.is_open and tee.frames > 10
        assert len([m for _, m in pings if m == "WATCHDOG=1"]) >= 3

        source = tee.source
        assert source is not None and hasattr(source, "hold_capture")
        source.hold_capture(True)  # the capture thread blocks before its next read
        wedged_at = time.monotonic()
        worst_lag = 0.0
        while time.monotonic() - wedged_at < grace + 1.5:
            asked = time.monotonic()
            await asyncio.sleep(0.02)
            worst_lag = max(worst_lag, time.monotonic() - asked - 0.02)
        after = [t - wedged_at for t, m in pings if m == "WATCHDOG=1" and t > wedged_at]
        # Pings go on within the grace time, then stop; the loop itself stayed responsive.
        assert after and max(after) < grace + 3 * interval, after
        assert worst_lag < 0.25, f"event loop lagged {worst_lag:.3f} s"
        health = app.health()
        mic_probe = next(p for p in health["probes"] if p["name"] == "mic")
        assert not health["healthy"] and not mic_probe["ok"] and mic_probe["active"]
        assert mic_probe["last_ok_age"] > grace and mic_probe["grace"] == grace

        source.hold_capture(False)
        released_at = time.monotonic()
        await wait_until(
            lambda: any(m == "WATCHDOG=1" and t > released_at for t, m in pings), 5, 0.02)
        assert app.health()["healthy"]
        await asyncio.wait_for(tee.release("test"), T)
        assert not tee.is_open
    finally:
        app.request_stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        feeder.close()

"""Garbage on the serial control line: ERR, never a crash, and the next good line works.

Thousands of random inputs go through the protocol session directly (with the real
dispatcher), then through the real transport on a pty, and PING still answers OK."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.actions import Dispatcher
from drivers.common.bus import EventBus
from drivers.serial import LineSplitter, SerialLine
from services.serial_control import ControlSession
from services.serial_control.server import SerialControlServer
from tests.control.support import Pty, SerialClient

STATUS = {"state": "idle", "reason": "", "room": {"id": 1, "state": None, "members": [],
                                                  "controls": None}}

FRAGMENTS = [b"PING", b"ping", b"MUTE ON", b"VOLUME MIC 50", b"VOLUME SPEAKER 999",
             b"SAY hi", b"TELL", b"MEMBER MUTE ALL", b"JOIN 0", b"JOIN 99999999999999999999",
             b"STATUS?", b"MEMBERS?", b"CUSTOM x {", b"HAND", b"EVENTS ON", b"\x00", b"\xff",
             b"\xc3", b"\xe2\x9c", b"\r", b"\n", b"\r\n", b" ", b"\t", b"?", b"=", b'"',
             b"X" * 300, b"\x1b[A", "é✓".encode()]

chunks = st.lists(st.one_of(st.binary(max_size=64), st.sampled_from(FRAGMENTS)), max_size=12)


def session() -> ControlSession:
    return ControlSession(Dispatcher(None).dispatch, lambda: STATUS, "0.0.0",
                          rate=1e9, burst=10**9)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def check_reply_lines(lines: list[str]) -> None:
    for line in lines:
        assert line.startswith(("OK ", "ERR ", "MEMBER ")), line
        assert "\r" not in line and "\n" not in line
        line.encode("utf-8")


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=chunks)
def test_session_survives_anything(loop: asyncio.AbstractEventLoop,
                                   data: list[bytes]) -> None:
    s = session()
    splitter = LineSplitter(256)
    for chunk in data:
        for line in splitter.feed(chunk):
            replies = loop.run_until_complete(asyncio.wait_for(
                s.handle(line.data, line.overflow), 5))
            assert len(replies) <= 1  # no room: no multi-line replies
            check_reply_lines(replies)
    assert splitter.pending <= 256
    for line in splitter.feed(b"\r\nPING\r\n"):
        last = loop.run_until_complete(s.handle(line.data, line.overflow))
    assert last == ["OK PONG"]


@given(raw=st.binary(max_size=400))
@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_single_line_gets_one_reply(loop: asyncio.AbstractEventLoop, raw: bytes) -> None:
    raw = raw.replace(b"\r", b"").replace(b"\n", b"")
    replies = loop.run_until_complete(session().handle(raw[:256], len(raw) > 256))
    if raw.strip(b" \t"):
        assert len(replies) == 1
        check_reply_lines(replies)
    else:
        assert replies == []


class ServerThread:
    """The serial control server on a pty, in its own event loop thread."""

    def __init__(self, link: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.link = link
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.task = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        assert self.ready.wait(10)

    async def _start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._serve(), name="fuzz-serial-server")

    async def _stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _serve(self) -> None:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        s = ControlSession(Dispatcher(None, emit=bus.publish).dispatch, lambda: STATUS,
                           "0.0.0", rate=1e9, burst=10**9)
        async with SerialLine(str(self.link), queue_size=1024) as line:
            self.line = line
            self.ready.set()
            await SerialControlServer(line, s, bus).run()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SerialClient]:
    pty = Pty(tmp_path_factory.mktemp("fuzz") / "ttyFUZZ")
    srv = ServerThread(pty.link)
    client = SerialClient(pty)
    assert client.read_line().startswith("EV ready")
    yield client
    srv.close()
    pty.close()


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=chunks)
def test_over_the_pty_ping_still_answers(server: SerialClient, data: list[bytes]) -> None:
    for chunk in data:
        server.send(chunk)
    server.send(b"\r\nPING\r\n")
    while True:
        lines = server.reply()
        check_reply_lines(lines)
        if lines == ["OK PONG"]:
            break
    server.events.clear()

"""Item 14: malformed HTTP logs one line and answers JSON, every error body is JSON,
``mic-level`` stays off the serial line, a message to a missing member is refused."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from device import logs
from services.room.api import Member
from tests.abuse.conftest import TIMEOUT, Served, login, serve
from tests.control.support import RunningApp, SerialClient, T, make_config
from tests.harness.pty import Pty

MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: box\r\nContent-Length: abc\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",  # TLS to the HTTP port
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: box\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: box\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                            TIMEOUT)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=["length", "tls", "long", "chunk"])
async def test_a_malformed_request_logs_one_line_and_answers_json(
        served: Served, request_bytes: bytes) -> None:
    logs.RING.lines.clear()
    port = int(served.url.rsplit(":", 1)[1])
    reply = await _raw(port, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1.[01] 4\d\d ", head), reply[:200]
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]
    assert b"Python" not in reply and b"aiohttp" not in reply
    await asyncio.sleep(0.1)
    lines = list(logs.RING.lines)
    assert len([x for x in lines if "bad request from 127.0.0.1" in x]) == 1, lines
    assert not [x for x in lines if "Traceback" in x], lines
    assert all("\n" not in x for x in lines), lines


async def test_every_error_body_is_json(tmp_path: Path, log_ring: None) -> None:
    async with serve(tmp_path) as box, aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        csrf = await login(http, box)
        hdr = {"X-CSRF-Token": csrf}
        as_json = {**hdr, "Content-Type": "application/json"}
        cases = [
            ("GET", "/api/nope", {}, None, 404),
            ("GET", "/static/nope.js", {}, None, 404),
            ("GET", "/static/../edgeroom.toml", {}, None, 404),
            ("DELETE", "/api/config", hdr, None, 405),
            ("GET", "/api/login", {}, None, 405),
            ("PATCH", "/api/config", hdr, b"x" * 70000, 413),
            ("PATCH", "/api/config", {**hdr, "Content-Type": "text/plain"}, b"{}x", 415),
            ("POST", "/api/room/message", as_json, b"{", 400),
            ("POST", "/api/room/message", as_json, b'{"text": 5}', 400),
            ("GET", "/api/logs?lines=0", {}, None, 400),
            ("POST", "/api/room/message", {}, b"{}", 403),
        ]
        for method, path, headers, data, status in cases:
            async with http.request(method, f"{box.url}{path}", headers=headers,
                                    data=data) as r:
                assert r.status == status, (method, path, r.status, await r.text())
                assert r.content_type == "application/json", (method, path, r.content_type)
                assert (await r.json())["error"], (method, path)
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{box.url}/api/status") as r:
                assert r.status == 401 and r.content_type == "application/json"


async def test_a_message_to_a_missing_member_is_refused(
        served: Served, http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    hdr = {"X-CSRF-Token": csrf}
    async with http.post(f"{served.url}/api/room/join", json={}, headers=hdr) as r:
        assert r.status == 200
    await asyncio.sleep(0.2)
    served.room.add_member(Member("7", "Front desk"))
    async with http.post(f"{served.url}/api/room/message",
                         json={"text": "hello", "to": "8"}, headers=hdr) as r:
        assert r.status == 404
        assert (await r.json())["error"] == "NO_SUCH_MEMBER"
    async with http.post(f"{served.url}/api/room/message",
                         json={"text": "hello", "to": "7"}, headers=hdr) as r:
        assert r.status == 200
    assert served.room.sent == [("hello", "7")]
    # The serial line and buttons share the dispatcher: the same code there.
    from device.actions import ActionError
    with pytest.raises(ActionError) as err:
        await served.appliance.dispatcher.dispatch("message", {"text": "x", "to": "9"},
                                                   source="serial")
    assert err.value.code == "NO_SUCH_MEMBER"


@pytest.fixture
async def serial_box(tmp_path: Path) -> AsyncIterator[tuple[RunningApp, SerialClient]]:
    pty = Pty(tmp_path / "ttyCTRL")
    state = tmp_path / "state"
    state.mkdir()
    try:
        async with RunningApp(state, make_config(serial={"port": str(pty.link)})) as app:
            client = SerialClient(pty)
            await asyncio.wait_for(asyncio.to_thread(client.read_line), T + 1)  # EV ready
            yield app, client
    finally:
        pty.close()


async def test_mic_level_is_not_sent_on_the_serial_line(
        serial_box: tuple[RunningApp, SerialClient]) -> None:
    app, line = serial_box
    for _ in range(10):
        app.bus.publish("mic-level", {"level_dbfs": -23.5})
    app.bus.publish("member-joined", {"id": "7", "display": "Front desk", "talking": False})
    ev = await asyncio.wait_for(asyncio.to_thread(
        line.wait_event, lambda e: e.startswith("EV member-joined")), T + 1)
    assert ev.startswith("EV member-joined id=7")
    assert not [e for e in line.events if "mic-level" in e], line.events

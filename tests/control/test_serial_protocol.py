"""The serial control protocol against a running appliance, over a real pty.

The appliance is in-process with its real dispatcher, event bus, supervisor and serial
subsystem; this file covers every command without a room session (the room-backed
replies are in test_serial_room.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from device.app import Appliance
from device.state import ApplianceState
from services.serial_control.commands import COMMANDS
from tests.control.support import Pty, RunningApp, SerialClient, T, make_config, until


@pytest.fixture
def pty(tmp_path: Path) -> AsyncIterator[Pty]:
    p = Pty(tmp_path / "ttyCTRL")
    yield p  # type: ignore[misc]
    p.close()


@pytest.fixture
async def running(tmp_path: Path, pty: Pty) -> AsyncIterator[tuple[Appliance, SerialClient]]:
    state = tmp_path / "state"
    state.mkdir()
    config = make_config(serial={"port": str(pty.link)}, room={"room": 4321})
    async with RunningApp(state, config) as app:
        client = SerialClient(pty)
        hello = await asyncio.wait_for(asyncio.to_thread(client.read_line), T + 1)
        assert re.fullmatch(r"EV ready version=\S+ state=idle", hello), hello
        yield app, client


async def ask(client: SerialClient, line: str) -> str:
    return await asyncio.wait_for(asyncio.to_thread(client.cmd, line), T + 1)


async def send_raw(client: SerialClient, data: bytes) -> list[str]:
    client.send(data)
    return await asyncio.wait_for(asyncio.to_thread(client.reply), T + 1)


async def test_box_commands(running: tuple[Appliance, SerialClient]) -> None:
    _app, c = running
    assert await ask(c, "PING") == "OK PONG"
    assert await ask(c, "ping") == "OK PONG"  # case-insensitive
    assert await ask(c, "  PiNg  ") == "OK PONG"
    assert re.fullmatch(r"OK VERSION \d+\.\d+\.\d+\S*", await ask(c, "VERSION?"))
    help_words = (await ask(c, "HELP")).split()[2:]
    assert set(help_words) == set(COMMANDS)
    status = await ask(c, "STATUS?")
    assert status.startswith("OK STATUS state=idle room=4321 room_state=- members=0 mic=- ")
    assert await ask(c, "EVENTS?") == "OK EVENTS ON"
    assert await ask(c, "EVENTS off") == "OK EVENTS OFF"
    assert await ask(c, "EVENTS?") == "OK EVENTS OFF"
    assert await ask(c, "EVENTS ON") == "OK EVENTS ON"
    assert await ask(c, "EVENTS MAYBE") == "ERR BAD_ARGUMENT usage: EVENTS ON|OFF"


ROOMLESS = [
    ("JOIN", "ERR UNAVAILABLE the room client is not running"),
    ("JOIN 77", "ERR UNAVAILABLE the room client is not running"),
    ("JOIN lobby", "ERR UNAVAILABLE the room client is not running"),
    ("LEAVE", "ERR UNAVAILABLE the room client is not running"),
    ("MUTE ON", "ERR UNAVAILABLE the room client is not running"),
    ("MUTE toggle", "ERR UNAVAILABLE the room client is not running"),
    ("MUTE?", "ERR UNAVAILABLE the room client is not running"),
    ("PTT START", "ERR UNAVAILABLE the room client is not running"),
    ("VOLUME MIC 50", "ERR UNAVAILABLE the room client is not running"),
    ("VOLUME SPEAKER UP", "ERR UNAVAILABLE the room client is not running"),
    ("SPEAKER OFF", "ERR UNAVAILABLE the room client is not running"),
    ("VIDEO OFF", "ERR UNAVAILABLE the room client is not running"),
    ("DEAF ON", "ERR UNAVAILABLE the room client is not running"),
    ("HAND", "ERR UNAVAILABLE the room client is not running"),
    ("SAY hello there", "ERR UNAVAILABLE the room client is not running"),
    ("TELL 42 hello", "ERR UNAVAILABLE the room client is not running"),
    ('CUSTOM light {"on": true}', "ERR UNAVAILABLE the room client is not running"),
    ("MEMBERS?", "ERR UNAVAILABLE the room client is not running"),
    ("MEMBER MUTE 42 ON", "ERR UNAVAILABLE the room client is not running"),
    ("MEMBER MUTE ALL ON", "ERR UNAVAILABLE the room client is not running"),
    ("MEMBER MODERATE 42 ON", "ERR UNAVAILABLE the room client is not running"),
    ("MEMBER KICK 42", "ERR UNAVAILABLE the room client is not running"),
    ("ROLE LISTENER", "ERR UNAVAILABLE the room client is not running"),
    ("RECORD START", "ERR UNAVAILABLE recording and streaming are not available"),
    ("STREAM STOP", "ERR UNAVAILABLE recording and streaming are not available"),
]

BAD = [
    ("FROB", "ERR UNKNOWN_COMMAND unknown command FROB; HELP lists the commands"),
    ("JOIN the/lobby", "ERR BAD_ARGUMENT room must be a number 1-9007199254740992, or a "
                       "name (1-128 letters, digits, '.', '_', '~' or '-', starting with a "
                       "letter or digit), got 'the/lobby'"),
    ("JOIN -1", "ERR BAD_ARGUMENT room must be a number 1-9007199254740992, or a name "
                "(1-128 letters, digits, '.', '_', '~' or '-', starting with a letter or "
                "digit), got '-1'"),
    ("JOIN 0", "ERR BAD_ARGUMENT room must be a number 1-9007199254740992, got 0"),
    ("JOIN 1 2", "ERR BAD_ARGUMENT usage: JOIN [room]"),
    ("LEAVE now", "ERR BAD_ARGUMENT usage: LEAVE"),
    ("MUTE", "ERR BAD_ARGUMENT usage: MUTE ON|OFF|TOGGLE"),
    ("MUTE SOMETIMES", "ERR BAD_ARGUMENT usage: MUTE ON|OFF|TOGGLE"),
    ("PTT HOLD", "ERR BAD_ARGUMENT usage: PTT START|STOP"),
    ("VOLUME MIC 101", "ERR BAD_ARGUMENT volume must be a number 0-100, got 101"),
    ("VOLUME MIC -1", "ERR BAD_ARGUMENT volume must be a number 0-100, got -1"),
    ("VOLUME BASS 5", "ERR BAD_ARGUMENT usage: VOLUME MIC|SPEAKER 0-100|UP|DOWN"),
    ("VOLUME MIC", "ERR BAD_ARGUMENT usage: VOLUME MIC|SPEAKER 0-100|UP|DOWN"),
    ("SPEAKER LOUD", "ERR BAD_ARGUMENT usage: SPEAKER ON|OFF|TOGGLE"),
    ("VIDEO", "ERR BAD_ARGUMENT usage: VIDEO ON|OFF|TOGGLE"),
    ("HAND WAVE", "ERR BAD_ARGUMENT usage: HAND [ON|OFF|TOGGLE]"),
    ("SAY", "ERR BAD_ARGUMENT usage: SAY text"),
    ("TELL 42", "ERR BAD_ARGUMENT usage: TELL id text"),
    ("CUSTOM light {on", 'ERR BAD_ARGUMENT the payload must be JSON (e.g. CUSTOM light '
                         '{"on": true})'),
    ("MEMBER WAVE 42", "ERR BAD_ARGUMENT usage: MEMBER MUTE id|ALL ON|OFF|TOGGLE | MEMBER "
                       "MODERATE id ON|OFF | MEMBER KICK id"),
    ("MEMBER MUTE ALL TOGGLE", "ERR BAD_ARGUMENT usage: MEMBER MUTE ALL ON|OFF"),
    ("MEMBER MODERATE 42 TOGGLE", "ERR BAD_ARGUMENT usage: MEMBER MODERATE id ON|OFF"),
    ("MEMBER KICK 42 now", "ERR BAD_ARGUMENT usage: MEMBER KICK id"),
    ("ROLE ADMIN", "ERR BAD_ARGUMENT usage: ROLE PUBLISHER|LISTENER"),
    ("RECORD PAUSE", "ERR BAD_ARGUMENT usage: RECORD START|STOP"),
    ("STREAM STOP rtmp://x/y", "ERR BAD_ARGUMENT usage: STREAM STOP"),
    ("FACTORY RESET", "ERR BAD_ARGUMENT usage: FACTORY RESET CONFIRM"),
    ("FACTORY RESET NOW", "ERR BAD_ARGUMENT usage: FACTORY RESET CONFIRM"),
    ("PING PONG", "ERR BAD_ARGUMENT usage: PING"),
]


async def test_roomless_replies(running: tuple[Appliance, SerialClient]) -> None:
    _, c = running
    for line, expected in ROOMLESS + BAD:
        assert await ask(c, line) == expected, line
        await asyncio.sleep(0.06)  # stay under the input rate limit
    # Every dispatcher refusal also reached the bus, and from there the serial line.
    ev = await asyncio.wait_for(asyncio.to_thread(
        c.wait_event, lambda e: e.startswith("EV action-failed action=join")), T + 1)
    assert "code=UNAVAILABLE" in ev and "source=serial" in ev


async def test_line_errors(running: tuple[Appliance, SerialClient]) -> None:
    _, c = running
    assert await send_raw(c, b"PI\x00NG\r\n") == [
        "ERR BAD_CHARACTER control character 0x00 at column 3"]
    assert await send_raw(c, b"SAY caf\xe9\r\n") == ["ERR BAD_ENCODING not UTF-8 (byte 7)"]
    assert await send_raw(c, b"X" * 300 + b"\r\n") == [
        "ERR LINE_TOO_LONG lines are limited to 256 bytes; the line was discarded"]
    assert await send_raw(c, b"\r\n\n\r  \r\nPING\n") == ["OK PONG"]  # blanks: no reply
    assert await send_raw(c, b"PING\r") == ["OK PONG"]  # CR alone ends a line
    c.send(b"PI")
    await asyncio.sleep(0.1)
    assert await send_raw(c, b"NG\r\n") == ["OK PONG"]  # a partial line waits for its end
    assert await send_raw(c, "SAY héllo ✓\r\n".encode()) == [
        "ERR UNAVAILABLE the room client is not running"]  # UTF-8 text is fine


async def test_input_rate_limit(running: tuple[Appliance, SerialClient]) -> None:
    _, c = running
    c.send(b"PING\r\n" * 200)
    replies: list[str] = []
    while True:
        try:
            replies += await asyncio.wait_for(asyncio.to_thread(c.reply, 0.5), 2)
        except TimeoutError:
            break
    limited = [r for r in replies if r.startswith("ERR RATE_LIMITED")]
    passed = replies.count("OK PONG")
    assert len(limited) + passed == len(replies)
    assert 40 <= passed < 200  # the burst, and whatever the rate refilled meanwhile
    # One ERR per run of discarded lines, not one per line (normally exactly one run).
    assert 1 <= len(limited) < 200 - passed
    await asyncio.sleep(1.0)
    assert await ask(c, "PING") == "OK PONG"


async def test_events_on_off(running: tuple[Appliance, SerialClient]) -> None:
    app, c = running
    app.bus.publish("member-joined", {"id": "7", "display": "Front desk", "talking": False})
    ev = await asyncio.wait_for(asyncio.to_thread(
        c.wait_event, lambda e: e.startswith("EV member-joined")), T + 1)
    assert ev == 'EV member-joined id=7 display="Front desk" talking=off'
    app.bus.publish("stats", {"up_kbps": 1})  # telemetry is not sent
    assert await ask(c, "EVENTS OFF") == "OK EVENTS OFF"
    app.bus.publish("member-left", {"id": "7", "display": "Front desk"})
    assert await ask(c, "PING") == "OK PONG"
    assert await ask(c, "EVENTS ON") == "OK EVENTS ON"
    app.bus.publish("message", {"from": "7", "text": 'say "hi"\nbye', "to": None})
    ev = await asyncio.wait_for(asyncio.to_thread(
        c.wait_event, lambda e: e.startswith("EV message")), T + 1)
    assert ev == r'EV message from=7 text="say \"hi\"\nbye" to=-'
    assert not [e for e in c.events if e.startswith(("EV stats", "EV member-left"))]


async def test_factory_reset_over_serial(running: tuple[Appliance, SerialClient],
                                         tmp_path: Path) -> None:
    app, c = running
    state = app.state_dir
    for name in ("web-password.hash", "tls-key.pem"):
        (state / name).write_text("s3cret")
    (state / "recordings").mkdir()
    (state / "recordings" / "a.mkv").write_bytes(b"keep me")
    assert app.config_path.exists()
    assert await ask(c, "FACTORY RESET CONFIRM") == "OK FACTORY RESET"
    await asyncio.wait_for(asyncio.to_thread(
        c.wait_event, lambda e: e.startswith("EV state") and "new=setup" in e), T + 1)
    assert app.state.state == ApplianceState.SETUP
    assert not app.config_path.exists()
    assert not [p for p in state.iterdir() if p.name in (
        "web-password.hash", "tls-key.pem", ".reset-trash")]
    assert (state / "recordings" / "a.mkv").read_bytes() == b"keep me"
    assert app.config.room.room == 1234  # back to defaults...
    assert app.config.serial.port == str(c.pty.link)  # ...but the box's own wiring stays
    # The serial subsystem was restarted, and greets again.
    await asyncio.wait_for(asyncio.to_thread(
        c.wait_event, lambda e: e.startswith("EV ready") and "state=setup" in e), T + 1)
    assert app.reset_task is not None
    await asyncio.wait_for(app.reset_task, T)
    assert await ask(c, "STATUS?") == await ask(c, "STATUS?")
    assert (await ask(c, "STATUS?")).startswith("OK STATUS state=setup room=1234 ")


async def test_serial_port_unplugged_and_back(running: tuple[Appliance, SerialClient]) -> None:
    app, c = running
    assert await ask(c, "PING") == "OK PONG"
    sub = app.bus.subscribe(names={"device-lost", "device-restored"})
    c.pty.close()
    c.pty.link.unlink()
    lost = await sub.get(T)
    assert lost.name == "device-lost" and lost.data["device"] == str(c.pty.link)
    c.pty.plug()
    restored = await sub.get(T)
    assert restored.name == "device-restored"
    assert await ask(c, "PING") == "OK PONG"
    await until(lambda: app.supervisor.subsystems["serial"].failures == 0)


def test_the_protocol_doc_covers_every_command() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "serial-protocol.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    documented = {row.split("`")[1].split()[0] for row in rows}
    assert set(COMMANDS) <= documented, set(COMMANDS) - documented
    for cmd in COMMANDS.values():
        for word in cmd.usage.replace("|", " ").split():
            if word.isupper() and len(word) > 2:
                assert word in doc, f"{word} (from {cmd.usage}) is not in the doc"

"""The serial line transport over a real pty pair and pyserial's loop:// URL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import DeviceNotFound
from drivers.serial import Line, LineSplitter, SerialLine
from tests.harness.pty import Pty

T = 5.0


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "ttyEDGE0")
    yield p
    p.close()


async def readline(line: SerialLine) -> Line:
    return await asyncio.wait_for(line.readline(), T)


async def test_lines_both_ways(pty: Pty) -> None:
    async with SerialLine(str(pty.link)) as line:
        pty.send(b"PING\r\nSTATUS?\nJOIN 1234\r")
        assert (await readline(line)).data == b"PING"
        assert (await readline(line)).data == b"STATUS?"
        assert (await readline(line)).data == b"JOIN 1234"
        assert await asyncio.wait_for(line.write(b"OK PONG\r\n"), T)
        got = await asyncio.to_thread(pty.recv_until, b"\r\n")
        assert got == b"OK PONG\r\n"


async def test_partial_lines_are_joined(pty: Pty) -> None:
    async with SerialLine(str(pty.link)) as line:
        for piece in (b"MU", b"TE ", b"ON\r"):
            pty.send(piece)
            await asyncio.sleep(0.05)
        pty.send(b"\nLEAVE\n")  # LF after CR in a later chunk: still one terminator
        assert (await readline(line)).data == b"MUTE ON"
        assert (await readline(line)).data == b"LEAVE"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(line.readline(), 0.2)


async def test_overlong_line_is_cut_and_flagged(pty: Pty) -> None:
    async with SerialLine(str(pty.link), max_line=16) as line:
        pty.send(b"X" * 5000 + b"\nPING\n")
        first = await readline(line)
        assert first.overflow and first.data == b"X" * 16
        assert await readline(line) == Line(b"PING")


async def test_reopen_after_the_pty_closes(pty: Pty) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with SerialLine(str(pty.link), emit=lambda n, d: events.append((n, d)),
                          reopen_min=0.05, reopen_max=0.2) as line:
        pty.send(b"one\n")
        assert (await readline(line)).data == b"one"
        pty.unplug()
        await _until(lambda: [n for n, _ in events] == ["device-lost"])
        assert not line.connected
        assert not await asyncio.wait_for(line.write(b"lost\n"), T)  # dropped, no crash
        await asyncio.sleep(0.3)  # a few failed reopen attempts
        pty.plug()
        await _until(lambda: [n for n, _ in events] == ["device-lost", "device-restored"])
        assert events[0][1]["device"] == str(pty.link)
        pty.send(b"two\n")
        assert (await readline(line)).data == b"two"
        assert await asyncio.wait_for(line.write(b"back\n"), T)
        assert await asyncio.to_thread(pty.recv_until, b"\n") == b"back\n"
        assert line.reopens == 1


async def test_write_times_out_when_nobody_reads(pty: Pty) -> None:
    async with SerialLine(str(pty.link), write_timeout=0.2) as line:
        big = b"Y" * 65536 + b"\n"
        results = [await asyncio.wait_for(line.write(big), T) for _ in range(8)]
        assert False in results  # the pty buffer filled up: a timeout, not a hang
        assert line.write_errors >= 1


async def test_slow_consumer_drops_oldest_lines(pty: Pty) -> None:
    async with SerialLine(str(pty.link), queue_size=4) as line:
        pty.send(b"".join(b"L%d\n" % i for i in range(50)))
        await _until(lambda: line.lines_in == 50)
        await asyncio.sleep(0.05)
        assert line.dropped == 46
        assert (await readline(line)).data == b"L46"


async def test_loop_url() -> None:
    async with SerialLine("loop://") as line:
        assert await asyncio.wait_for(line.write(b"hello\r\n"), T)
        assert (await readline(line)).data == b"hello"


async def test_missing_device_names_it(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match=r"ttyNOPE cannot be opened.*serial ports here"):
        await asyncio.wait_for(SerialLine(str(tmp_path / "ttyNOPE")).open(), T)
    with pytest.raises(DeviceNotFound):
        await asyncio.wait_for(SerialLine("nosuchscheme://x").open(), T)


async def test_close_is_idempotent(pty: Pty) -> None:
    line = await asyncio.wait_for(SerialLine(str(pty.link)).open(), T)
    await asyncio.wait_for(line.close(), T)
    await asyncio.wait_for(line.close(), T)
    with pytest.raises(EOFError):
        await readline(line)


def test_splitter_terminators_and_limits() -> None:
    s = LineSplitter(max_line=4)
    assert s.feed(b"a\rb\nc\r\nd") == [Line(b"a"), Line(b"b"), Line(b"c")]
    assert s.pending == 1
    assert s.feed(b"\r") == [Line(b"d")]
    assert s.feed(b"\n\n") == [Line(b"")]  # the LF belongs to the CR; then an empty line
    assert s.feed(b"abcdefgh") == []
    assert s.pending == 4  # bounded
    assert s.feed(b"ij\nok\n") == [Line(b"abcd", overflow=True), Line(b"ok")]


async def _until(cond: Any, timeout: float = T) -> None:
    async def wait() -> None:
        while not cond():  # noqa: ASYNC110 (polling state other threads change)
            await asyncio.sleep(0.02)
    await asyncio.wait_for(wait(), timeout)

"""An in-process appliance with its real dispatcher, bus, supervisor, GPIO and serial
subsystems, and a serial client on the far end of a pty."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device import config as config_mod
from device.app import Appliance
from device.config import Config
from tests.harness.pty import Pty

T = 5.0


class SerialClient:
    """Blocking line client on a pty master: what an AV control system would do."""

    def __init__(self, pty: Pty) -> None:
        self.pty = pty
        self._buf = b""
        self.events: list[str] = []

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        while view:
            n = os.write(self.pty.master, view[:1024])
            view = view[n:]

    def read_line(self, timeout: float = T) -> str:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.pty.master], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"no line from the appliance; partial {self._buf!r}")
            try:
                self._buf += os.read(self.pty.master, 65536)
            except OSError as exc:  # EIO: nobody has the slave side open (reopening)
                if exc.errno != errno.EIO:
                    raise
                time.sleep(0.02)
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line.decode("utf-8")

    def reply(self, timeout: float = T) -> list[str]:
        """The next reply (its OK/ERR line and any MEMBER lines after it); EV lines seen
        meanwhile go to ``events``."""
        while True:
            line = self.read_line(timeout)
            if line.startswith("EV "):
                self.events.append(line)
                continue
            assert line.startswith(("OK", "ERR ")), f"not a reply line: {line!r}"
            lines = [line]
            if line.startswith("OK MEMBERS "):
                lines += [self.read_line(timeout) for _ in range(int(line.split()[2]))]
            return lines

    def cmd(self, line: str, timeout: float = T) -> str:
        """Send one command, return its (single-line) reply."""
        self.send(line + "\r\n")
        return self.reply(timeout)[0]

    def wait_event(self, pred: Callable[[str], bool], timeout: float = T) -> str:
        for ev in self.events:
            if pred(ev):
                self.events.remove(ev)
                return ev
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            assert line.startswith("EV "), f"unexpected line {line!r}"
            if pred(line):
                return line
            self.events.append(line)


class ControlsAppliance(Appliance):
    """The appliance with the subsystems under test (and, when given, a room session)."""

    def __init__(self, *args: Any, room: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._test_room = room

    def _compose(self) -> None:
        from device import wiring

        if self._test_room is not None:
            self.room = self._test_room
            self.dispatcher.room = self._test_room
        wiring._compose_controls(self)


def make_config(**sections: dict[str, Any]) -> Config:
    return Config().replace(sections)


class RunningApp:
    """``async with RunningApp(...) as app``: the appliance runs in this loop."""

    def __init__(self, state_dir: Path, config: Config, *, sim: bool = True,
                 room: Any = None) -> None:
        self.config_path = state_dir / "edgeroom.toml"
        config_mod.save(self.config_path, config)
        self.app = ControlsAppliance(config, self.config_path, state_dir, sim=sim, room=room)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Appliance:
        self._task = asyncio.create_task(self.app.run(), name="test-appliance")
        await until(lambda: "serial" in self.app.supervisor.subsystems)
        return self.app

    async def __aexit__(self, *exc: object) -> None:
        self.app.request_stop()
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)


async def until(cond: Callable[[], Any], timeout: float = T) -> None:
    async def wait() -> None:
        while not cond():  # noqa: ASYNC110 (polling state other threads change)
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)

"""The serial control protocol on a serial line: commands in, replies and ``EV`` lines out.

Commands are handled one at a time, in order; each reply (all its lines) is written in
one piece, so an ``EV`` line never splits a reply. Events come from the appliance's bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from drivers.serial import SerialLine
from services.serial_control.format import event, join_lines
from services.serial_control.session import ControlSession, Dispatch

if TYPE_CHECKING:
    from services.serial_control.settings import SerialControlSettings

log = logging.getLogger(__name__)

#: Bus events not sent as ``EV`` lines: high-rate telemetry, and the record of actions
#: (their effects arrive as their own events, and the caller got the reply).
QUIET_EVENTS = frozenset({"stats", "action", "local-talking", "level", "mic-level"})


class _Bus(Protocol):
    def subscribe(self, maxsize: int = 256, names: set[str] | None = None) -> Any: ...


class SerialControlServer:
    def __init__(self, line: SerialLine, session: ControlSession, bus: _Bus,
                 state: Any = None) -> None:
        self.line = line
        self.session = session
        self.bus = bus
        self._state = state  # a callable giving the appliance state for the greeting

    def __repr__(self) -> str:
        return f"<SerialControlServer {self.line!r} {self.session!r}>"

    async def run(self) -> None:
        """Serve until cancelled (or the line is closed)."""
        sub = self.bus.subscribe(maxsize=256)
        try:
            hello: dict[str, Any] = {"version": self.session.version}
            if self._state is not None:
                hello["state"] = str(self._state())
            await self.line.write(join_lines([event("ready", hello)]))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._commands(), name="serial-control:commands")
                tg.create_task(self._events(sub), name="serial-control:events")
        finally:
            sub.close()

    async def _commands(self) -> None:
        while True:
            try:
                line = await self.line.readline()
            except EOFError:
                return
            replies = await self.session.handle(line.data, line.overflow)
            if replies:
                await self.line.write(join_lines(replies))

    async def _events(self, sub: Any) -> None:
        reported = 0
        async for ev in sub:
            if ev.name in QUIET_EVENTS or not self.session.events_enabled:
                continue
            lines = []
            if sub.dropped != reported:
                lines.append(event("overflow", {"dropped": sub.dropped - reported}))
                reported = sub.dropped
            lines.append(event(ev.name, ev.data))
            await self.line.write(join_lines(lines))


class _App(Protocol):
    """What the serial control needs of the appliance."""

    bus: Any
    state: Any
    dispatcher: Any

    def status(self) -> Mapping[str, Any]: ...


async def run_serial_control(app: _App, settings: SerialControlSettings) -> None:
    """The ``serial`` subsystem: serve ``settings.port`` until cancelled (idle if unset)."""
    cfg = settings
    if not cfg.port:
        log.info("serial control off (serial.port is not set)")
        await asyncio.Event().wait()
        return
    dispatch: Dispatch = app.dispatcher.dispatch
    session = ControlSession(dispatch, app.status, str(app.status().get("version", "")))
    async with SerialLine(cfg.port, cfg.baudrate, emit=app.bus.publish,
                          max_line=session.max_line) as line:
        await SerialControlServer(line, session, app.bus, lambda: app.state.state).run()

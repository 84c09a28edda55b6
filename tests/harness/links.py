"""Several Janus servers, each in its own namespace on one private network, and a link
orchestrator running in a namespace of its own (for the cross-server link tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.room.janus.jcfg import RoomSpec
from services.room.links.manager import LinkManager
from services.room.links.settings import LinkSettings, RoomEnd
from tests.harness.janus import JanusServer
from tests.harness.netns import Network, NsLoop


def start_servers(network: Network, workdir: Path, count: int,
                  rooms: tuple[RoomSpec, ...], **options: Any) -> list[JanusServer]:
    """``count`` Janus servers with ``rooms`` (``options``: :class:`JanusServer`'s)."""
    servers = []
    for _ in range(count):
        name = f"janus{len(network.hosts) + 1}"
        host = network.add_host(name)
        server = JanusServer(host, workdir / name, rooms, **options)
        server.start()
        servers.append(server)
    return servers


def end(server: JanusServer, room: int | str, secret: str | None) -> RoomEnd:
    return RoomEnd(url=server.url, room=room, secret=secret)


class Orchestrator:
    """A :class:`LinkManager` on its own loop in its own namespace, recording events."""

    def __init__(self, network: Network, name: str = "ctl") -> None:
        self.loop = NsLoop(network.add_host(name))
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.manager: LinkManager = self.loop.run(self._build())

    async def _build(self) -> LinkManager:
        return LinkManager(self._record)

    def _record(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((time.monotonic(), name, data))

    def add(self, settings: LinkSettings) -> dict[str, Any]:
        async def add() -> dict[str, Any]:
            return self.manager.add(settings)

        return self.loop.run(add())

    def remove(self, name: str) -> None:
        self.loop.run(self.manager.remove(name), 20)

    def states(self, name: str, since: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            return [d for t, n, d in self.events
                    if n == "link-state" and d["name"] == name and t >= since]

    def wait_state(self, name: str, state: str, timeout: float = 20.0, since: float = 0.0,
                   match: Callable[[dict[str, Any]], bool] = lambda d: True) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for d in self.states(name, since):
                if d["state"] == state and match(d):
                    return d
            time.sleep(0.05)
        raise AssertionError(f"link {name} never {state}: "
                             f"{[(d['state'], d.get('reason')) for d in self.states(name)]}")

    def close(self) -> None:
        try:
            self.loop.run(self.manager.close(), 30)
        finally:
            self.loop.close()

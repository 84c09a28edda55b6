"""All of a box's links: those of its config and those added at run time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from drivers.base import Emit
from services.room.api import RoomError
from services.room.links.link import RoomLink, SessionFactory, default_session
from services.room.links.settings import LinkSettings

log = logging.getLogger(__name__)

#: Links one box keeps at most (a full mesh of four servers is three per room).
MAX_LINKS = 8


class LinkError(RoomError):
    code = "LINK_ERROR"


class NoSuchLink(LinkError, LookupError):
    code = "NO_SUCH_LINK"


class LinkManager:
    """Runs each link as its own task; ``emit`` gets their ``link-state`` events."""

    def __init__(self, emit: Emit, session_factory: SessionFactory = default_session) -> None:
        self._emit = emit
        self._factory = session_factory
        self._links: dict[str, RoomLink] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        return f"<LinkManager {sorted(self._links)}>"

    def links(self) -> list[dict[str, Any]]:
        return [link.info() for link in self._links.values()]

    def add(self, settings: LinkSettings) -> dict[str, Any]:
        """Start keeping ``settings`` up (must run on the event loop)."""
        if settings.name in self._links:
            raise LinkError(f"a link named {settings.name!r} exists already")
        if len(self._links) >= MAX_LINKS:
            raise LinkError(f"at most {MAX_LINKS} links")
        for other in self._links.values():
            o = other.settings
            if {o.local.where, o.far.where} == {settings.local.where, settings.far.where}:
                raise LinkError(f"link {o.name!r} joins the same rooms already")
        link = RoomLink(settings, self._emit, self._factory)
        self._links[settings.name] = link
        self._tasks[settings.name] = asyncio.create_task(link.run(),
                                                         name=f"link:{settings.name}")
        return link.info()

    async def remove(self, name: str) -> None:
        """Stop a link and undo its forwards."""
        task = self._tasks.pop(name, None)
        link = self._links.pop(name, None)
        if task is None or link is None:
            raise NoSuchLink(f"no link named {name!r}")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def run(self, configured: Iterable[LinkSettings]) -> None:
        """Keep ``configured`` links (and any added later) up until cancelled."""
        for settings in configured:
            self.add(settings)
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        for name in list(self._tasks):
            await self.remove(name)

"""A link kept up: both servers joined, forwards running, and set up again with backoff
after either server (or the path to it) fails.

States, each published as a ``link-state`` event (``old -> new`` in the log):
``connecting`` -> ``up`` -> (a server lost) ``retrying`` -> ``connecting`` -> ...;
``stopped`` once the link is removed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from drivers.base import Emit
from services.room.api import RoomError
from services.room.links.settings import LinkSettings
from services.room.links.vr_forward import Forwarder
from services.room.links.vr_server import VideoRoomServer

log = logging.getLogger(__name__)

#: A link that stayed up this long starts its next backoff from the beginning.
STABLE_S = 30.0


class LinkSession(Protocol):
    """One attempt at a link: runs until a server is lost (returns why) or cancelled."""

    async def run(self, on_up: Callable[[], None]) -> str: ...

    async def close(self) -> None: ...

    def counts(self) -> dict[str, Any]: ...


class VideoRoomLinkSession:
    """Both rooms joined and forwarded in the link's directions."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self.local = VideoRoomServer(settings.local)
        self.far = VideoRoomServer(settings.far)
        key = f"er-{settings.name}"
        self.outward = Forwarder(self.local, self.far, f"{key}-out") if settings.sends else None
        self.inward = Forwarder(self.far, self.local, f"{key}-in") if settings.receives else None

    async def run(self, on_up: Callable[[], None]) -> str:
        local_pubs = await self.local.open()
        far_pubs = await self.far.open()
        tasks: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.local.closed), asyncio.ensure_future(self.far.closed)]
        if self.outward is not None:
            tasks.append(asyncio.create_task(self.outward.run(local_pubs),
                                             name=f"link:{self.settings.name}:out"))
        if self.inward is not None:
            tasks.append(asyncio.create_task(self.inward.run(far_pubs),
                                             name=f"link:{self.settings.name}:in"))
        on_up()
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks[2:]:
                task.cancel()
            await asyncio.gather(*tasks[2:], return_exceptions=True)
        first = done.pop()
        if first is tasks[0]:
            return f"{self.settings.local.name}: {first.result()}"
        if first is tasks[1]:
            return f"{self.settings.far.name}: {first.result()}"
        exc = first.exception()
        if exc is not None:
            raise exc
        return "forwarding stopped"

    async def close(self) -> None:
        for fwd in (self.outward, self.inward):
            if fwd is not None:
                await fwd.teardown()
        await asyncio.gather(self.local.close(), self.far.close(), return_exceptions=True)

    def counts(self) -> dict[str, Any]:
        return {"sent": len(self.outward.copies) if self.outward else 0,
                "received": len(self.inward.copies) if self.inward else 0}


SessionFactory = Callable[[LinkSettings], LinkSession]


def default_session(settings: LinkSettings) -> LinkSession:
    if settings.backend == "audiobridge":
        from services.room.links.ab_link import AudioBridgeLinkSession

        return AudioBridgeLinkSession(settings)
    return VideoRoomLinkSession(settings)


class RoomLink:
    """Keeps one link up until :meth:`run` is cancelled."""

    def __init__(self, settings: LinkSettings, emit: Emit,
                 session_factory: SessionFactory = default_session,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.settings = settings
        self._emit = emit
        self._factory = session_factory
        self._sleep = sleep
        self.state = "connecting"
        self.reason = ""
        self.attempts = 0
        self._session: LinkSession | None = None

    def __repr__(self) -> str:
        return f"<RoomLink {self.settings.name} {self.state}>"

    def info(self) -> dict[str, Any]:
        s = self.settings
        data: dict[str, Any] = {"name": s.name, "state": self.state, "local": s.local.name,
                                "far": s.far.name, "direction": s.direction,
                                "backend": s.backend, "attempts": self.attempts}
        if self.reason:
            data["reason"] = self.reason
        if self._session is not None:
            data.update(self._session.counts())
        return data

    def _set(self, state: str, reason: str = "", **extra: Any) -> None:
        if state != self.state:
            log.info("link %s: %s -> %s%s", self.settings.name, self.state, state,
                     f" ({reason})" if reason else "")
        self.state = state
        self.reason = reason
        self._emit("link-state", {**self.info(), **extra})

    async def run(self) -> None:
        delay = self.settings.retry_min_s
        try:
            while True:
                self.attempts += 1
                self._set("connecting")
                session = self._session = self._factory(self.settings)
                started = time.monotonic()
                try:
                    reason = await session.run(lambda: self._set("up"))
                except RoomError as exc:
                    reason = str(exc)
                except Exception as exc:  # a surprise: logged, and the link tries again
                    log.exception("link %s failed", self.settings.name)
                    reason = f"{type(exc).__name__}: {exc}"
                finally:
                    await self._close(session)
                if time.monotonic() - started > STABLE_S:
                    delay = self.settings.retry_min_s
                wait = random.uniform(delay / 2, delay)
                self._set("retrying", reason, retry_in_s=round(wait, 2))
                await self._sleep(wait)
                delay = min(delay * 2, self.settings.retry_max_s)
        finally:
            self._session = None
            self._set("stopped")

    async def _close(self, session: LinkSession) -> None:
        try:
            await session.close()
        except Exception as exc:  # teardown is best effort; the next attempt cleans up
            log.warning("link %s: teardown: %s", self.settings.name, exc)

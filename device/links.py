"""The box's links (docs/links.md): settings built from the config, the ``links``
subsystem that keeps them up, and what the link actions do.

The services under :mod:`services.room.links` take frozen settings only; this module is
where the config becomes those settings.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from drivers.base import Emit
from services.room.links.manager import LinkError, LinkManager, NoSuchLink
from services.room.links.requests import AnswerPolicy, LinkRequester, LinkResponder
from services.room.links.settings import Direction, LinkSettings, RoomEnd

if TYPE_CHECKING:
    from device.config import Config
    from device.host import Host

log = logging.getLogger(__name__)


def local_end(config: Config) -> RoomEnd:
    """This box's room, as the far servers and the link see it."""
    room = config.room
    if room.server == "local":
        url = f"ws://{room.local_listen}:{room.local_port}"
    else:
        url = room.server
    return RoomEnd(url=url, room=room.room, secret=room.secret, pin=room.pin,
                   api_secret=room.api_secret, ca_file=room.ca_file, ca_key="room.ca_file",
                   media_host=config.links.media_host)


def link_settings(config: Config) -> list[LinkSettings]:
    """The ``[[link]]`` tables as link settings; ValueError names a link that cannot work."""
    own = local_end(config)
    out = []
    for i, link in enumerate(config.link, start=1):
        far = RoomEnd(url=link.server, room=link.room, secret=link.secret, pin=link.pin,
                      api_secret=link.api_secret, ca_file=link.ca_file,
                      media_host=link.media_host, label=link.label)
        out.append(LinkSettings(link.name or f"link-{i}", own, far, link.direction,
                                config.room.backend))
    return out


def answer_policy(config: Config) -> AnswerPolicy:
    allow = tuple(a.strip() for a in config.links.allow.split(",") if a.strip())
    return AnswerPolicy(auto_accept=config.links.auto_accept, allow=allow)


class RoomMessenger:
    """The current room session's message channel (the session is rebuilt on restarts)."""

    def __init__(self, app: Host) -> None:
        self._app = app

    async def send_text(self, text: str, to: str | None = None) -> None:
        room = self._app.room
        if room is None:
            raise LinkError("not in a room: cannot answer")
        await room.send_text(text, to)


class LinkControl:
    """The links of a running box, as the actions and the page use them."""

    def __init__(self, config: Config, emit: Emit, messenger: RoomMessenger) -> None:
        self.config = config
        self.manager = LinkManager(emit)
        own = local_end(config)
        self.requester = LinkRequester(own, self.manager, emit)
        self.responder = LinkResponder(own, messenger, emit, answer_policy(config))
        self._emit = emit
        self._tasks: set[asyncio.Task[Any]] = set()

    def links(self) -> list[dict[str, Any]]:
        return self.manager.links()

    async def link(self, name: str, server: str, room: int | str, secret: str | None,
                   direction: Direction) -> dict[str, Any]:
        far = RoomEnd(url=server, room=room, secret=secret)
        own = self.requester.local
        if urlsplit(server).hostname is None:
            raise LinkError(f"{server!r} names no host")
        if secret is not None:
            try:
                settings = LinkSettings(name, own, far, direction)
            except ValueError as exc:
                raise LinkError(str(exc)) from None
            return self.manager.add(settings)
        # No secret: ask the far room; the answer comes as link-answer (and link-state).
        task = asyncio.create_task(self._ask(name, far, direction), name=f"link:{name}:ask")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"name": name, "state": "requested", "far": far.name}

    async def _ask(self, name: str, far: RoomEnd, direction: Direction) -> None:
        try:
            await self.requester.request(name, far, direction)
        except (LinkError, ValueError, OSError) as exc:
            log.warning("link %s: request failed: %s", name, exc)
            self._emit("link-answer", {"name": name, "accepted": False, "reason": str(exc)})
        except Exception as exc:  # a RoomError from the far server: reported, not raised
            if getattr(exc, "code", None) is None:
                raise
            log.warning("link %s: request failed: %s", name, exc)
            self._emit("link-answer", {"name": name, "accepted": False, "reason": str(exc)})

    async def unlink(self, name: str) -> None:
        if name in {link["name"] for link in self.manager.links()}:
            await self.requester.end(name)  # tells the far room if it was requested
            if name in {link["name"] for link in self.manager.links()}:
                await self.manager.remove(name)
            return
        raise NoSuchLink(f"no link named {name!r}")

    async def answer(self, request_id: str, accept: bool, reason: str) -> None:
        await self.responder.answer(request_id, accept, reason)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.requester.close()
        await self.manager.close()


async def run_links(app: Host) -> None:
    """The ``links`` subsystem: the configured links, those added by actions, and the
    answers to other boxes' requests (until cancelled; restarted on a config change)."""
    current = app.dispatcher.links
    if isinstance(current, LinkControl) and current.config is app.config:
        control = current
    else:  # a restart for a new config
        if current is not None:
            await current.close()
        control = LinkControl(app.config, app.bus.publish, RoomMessenger(app))
        app.dispatcher.links = control
    try:
        configured = link_settings(app.config)
    except ValueError as exc:
        log.error("links: %s", exc)
        app.bus.publish("link-state", {"name": "", "state": "stopped", "reason": str(exc)})
        configured = []
    for settings in configured:
        control.manager.add(settings)
    try:
        async with app.bus.subscribe(names={"custom-message"}, maxsize=64) as messages:
            async for event in messages:
                pending = control.responder.on_custom_message(_data(event))
                if pending is not None:
                    try:
                        await pending
                    except Exception as exc:  # the room went away meanwhile
                        log.warning("links: answering a request: %s", exc)
    finally:
        await control.close()


def _data(event: Any) -> dict[str, Any]:
    data = getattr(event, "data", event)
    return data if isinstance(data, dict) else {}

"""One direction of a VideoRoom link: the source room's own publishers, copied into the
target room as remote publishers and kept in step with the source.

For each local publisher of the source room the forwarder adds a remote publisher to the
target room (``add_remote_publisher``, which opens the UDP ports) and asks the source to
forward to it (``publish_remotely``). A renegotiation at the source becomes
``update_remote_publisher``; a publisher that stops or leaves has both undone. Publishers
that are themselves remote (forwarded from yet another room) are never forwarded, so a
mesh of links cannot loop (Janus 1.1 refuses to forward them anyway).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from services.room.api import RoomError
from services.room.janus.room_ids import server_id
from services.room.links.naming import MARK, linked_display, split_display
from services.room.links.vr_server import MemberId, Publisher, VideoRoomServer

log = logging.getLogger(__name__)

#: How long undoing one forward may take when the link is going down.
TEARDOWN_TIMEOUT_S = 3.0


@dataclass
class Copy:
    """A source publisher's remote copy in the target room."""

    remote_publisher: MemberId  # its id in the target room
    remote_id: str  # the forward's name at the source (publish_remotely's remote_id)
    signature: tuple[Any, ...]


class Forwarder:
    """Forwards ``source``'s local publishers into ``target``'s room."""

    def __init__(self, source: VideoRoomServer, target: VideoRoomServer, key: str) -> None:
        self.source = source
        self.target = target
        #: Names this forwarder's forwards at the source (stable across restarts, so
        #: what a previous run left behind can be found and removed).
        self.key = key
        self.copies: dict[MemberId, Copy] = {}
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=1024)
        self._remote_at_source: set[MemberId] = set()
        source.listeners.append(self._on_event)

    def __repr__(self) -> str:
        return (f"<Forwarder {self.source.end.name} -> {self.target.end.name} "
                f"copies={len(self.copies)}>")

    def _on_event(self, kind: str, arg: Any) -> None:
        try:
            self._queue.put_nowait((kind, arg))
        except asyncio.QueueFull:  # a room cannot produce this many; say so if it does
            log.error("%r: event queue full, dropped %s", self, kind)

    async def run(self, initial: list[Publisher]) -> None:
        """Forward ``initial`` and every later change, until cancelled."""
        await self._remove_leftovers()
        for publisher in initial:
            await self._safely(self._published, publisher)
        while True:
            kind, arg = await self._queue.get()
            if kind == "published":
                await self._safely(self._published, arg)
            elif kind == "gone":
                await self._safely(self._gone, arg)
            elif kind == "destroyed":
                raise RoomError(f"room {self.source.end.name} was destroyed",
                                code="NO_SUCH_ROOM")

    async def _safely(self, step: Any, arg: Any) -> None:
        """One step; a refusal about one publisher does not stop the others."""
        try:
            await step(arg)
        except RoomError as exc:
            if exc.code in ("SERVER_UNREACHABLE", "TIMEOUT"):
                raise  # the link goes down and comes back
            log.warning("%r: %s %s: %s", self, step.__name__.strip("_"), arg, exc)

    async def _is_local(self, publisher: Publisher) -> bool:
        if MARK in publisher.display or publisher.id in self._remote_at_source:
            return False
        self._remote_at_source |= await self.source.remote_ids()
        return publisher.id not in self._remote_at_source

    async def _published(self, publisher: Publisher) -> None:
        if not publisher.streams or not await self._is_local(publisher):
            return
        display = linked_display(publisher.display, self.source.end.name)
        streams = publisher.remote_streams()
        copy = self.copies.get(publisher.id)
        if copy is not None:
            if copy.signature != publisher.signature():
                await self.target.update_remote_publisher(copy.remote_publisher, display,
                                                          streams)
                copy.signature = publisher.signature()
                log.info("%r: %s renegotiated, copy %s updated", self, publisher.display,
                         copy.remote_publisher)
            return
        reply = await self.target.add_remote_publisher(display, streams)
        remote_publisher = server_id(reply["id"])
        remote_id = f"{self.key}:{remote_publisher}"
        host = self.target.end.media_host or _usable(reply.get("ip")) or self.target.end.host
        try:
            await self.source.publish_remotely(publisher.id, remote_id, host,
                                               int(reply["port"]), int(reply["rtcp_port"]))
        except BaseException:
            await _quietly(self.target.remove_remote_publisher(remote_publisher))
            raise
        self.copies[publisher.id] = Copy(remote_publisher, remote_id, publisher.signature())
        log.info("%r: forwarding %s (%s) as %s to %s:%s", self, publisher.display,
                 publisher.id, remote_publisher, host, reply["port"])

    async def _gone(self, publisher_id: MemberId) -> None:
        copy = self.copies.pop(publisher_id, None)
        if copy is None:
            return
        # The source forgets its forwards with the publisher when it leaves; after an
        # unpublish they would come back with the next publish, so undo them.
        await _quietly(self.source.unpublish_remotely(publisher_id, copy.remote_id))
        await self.target.remove_remote_publisher(copy.remote_publisher)
        log.info("%r: stopped forwarding %s (copy %s)", self, publisher_id,
                 copy.remote_publisher)

    async def _remove_leftovers(self) -> None:
        """Undo what an earlier run of this forwarder left on servers that stayed up."""
        for p in await self.target.participants():
            if p.get("remote") and split_display(str(p.get("display", "")))[1] == \
                    self.source.end.name:
                log.info("%r: removing leftover copy %s", self, p["id"])
                await _quietly(self.target.remove_remote_publisher(server_id(p["id"])))
        for p in await self.source.participants():
            if p.get("remote") or not p.get("publisher"):
                continue
            try:
                forwards = await self.source.list_remotes(server_id(p["id"]))
            except RoomError:
                continue
            for f in forwards:
                if str(f.get("remote_id", "")).startswith(f"{self.key}:"):
                    await _quietly(self.source.unpublish_remotely(server_id(p["id"]),
                                                                  str(f["remote_id"])))

    async def teardown(self) -> None:
        """Undo every forward on the servers still reachable (best effort, bounded)."""
        copies, self.copies = self.copies, {}
        for publisher_id, copy in copies.items():
            if _open(self.source):
                await _quietly(self.source.unpublish_remotely(publisher_id, copy.remote_id))
            if _open(self.target):
                await _quietly(self.target.remove_remote_publisher(copy.remote_publisher))


def _open(server: VideoRoomServer) -> bool:
    return server.conn is not None and not server.conn.closed.done()


def _usable(ip: Any) -> str | None:
    text = str(ip or "")
    return None if text in ("", "0.0.0.0", "::") else text


async def _quietly(request: Any) -> None:
    try:
        async with asyncio.timeout(TEARDOWN_TIMEOUT_S):
            await request
    except (RoomError, TimeoutError) as exc:
        log.debug("ignored: %s", exc)

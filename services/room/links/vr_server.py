"""One room on one Janus server, as a link sees it: who publishes what, and the
VideoRoom requests that set up forwarding (remote publishers, Janus 1.1.0 and later).

The link follows the room as a participant that never publishes (``joining`` it with the
:data:`~services.room.links.naming.WATCHER_DISPLAY`), which is how Janus tells it about
publishers, their streams, renegotiations and departures. Requests that change the room
go through a second handle and carry the room secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.room.janus.room_ids import RoomId, join_in_server_kind, server_id
from services.room.janus.transport import JanusConnection, JanusHandle, JsonDict
from services.room.links.naming import WATCHER_DISPLAY
from services.room.links.settings import RoomEnd

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
#: Stream fields copied from a publisher's description to its remote copy. The profile
#: fields stay out: Janus 1.1.2 validates ``h264_profile`` and ``vp9_profile`` as booleans
#: although they are strings, so sending them fails the request (the room's own profile
#: applies instead).
STREAM_FLAGS = ("stereo", "fec", "dtx", "simulcast", "svc", "disabled", "description")


@dataclass(frozen=True)
class Publisher:
    """A publisher of the room, as Janus describes it."""

    #: a number, or a string on a server with string ids
    id: int | str
    display: str
    #: Its streams, each ``{"type", "mindex", "mid", "codec", ...}``, by mindex.
    streams: tuple[JsonDict, ...]

    @classmethod
    def from_event(cls, entry: JsonDict) -> Publisher:
        streams = sorted((dict(s) for s in entry.get("streams", [])),
                         key=lambda s: int(s.get("mindex", 0)))
        return cls(server_id(entry["id"]), str(entry.get("display") or entry["id"]),
                   tuple(streams))

    def remote_streams(self) -> list[JsonDict]:
        """The ``streams`` of ``add_remote_publisher``/``update_remote_publisher``.

        Janus numbers a remote publisher's streams 0, 1, ... in the order given and
        tells them apart by SSRC (1000 + 10 x the source's mindex), so entry i must be the
        source's mindex i: gaps become disabled placeholders.
        """
        by_index = {int(s["mindex"]): s for s in self.streams}
        out: list[JsonDict] = []
        for i in range(max(by_index, default=-1) + 1):
            s = by_index.get(i)
            if s is None or s.get("type") not in ("audio", "video", "data"):
                out.append({"mid": str(i), "mindex": i, "type": "data", "disabled": True})
                continue
            entry: JsonDict = {"mid": str(i), "mindex": i, "type": s["type"]}
            if s["type"] != "data":
                if not s.get("codec"):  # inactive at the source: keep its place only
                    entry["disabled"] = True
                    entry["codec"] = "opus" if s["type"] == "audio" else "vp8"
                else:
                    entry["codec"] = s["codec"]
            for key in STREAM_FLAGS:
                if key in s:
                    entry[key] = s[key]
            out.append(entry)
        return out

    def signature(self) -> tuple[Any, ...]:
        """What a renegotiation can change: compared to tell an update from a repeat."""
        return (self.display, tuple((s.get("mindex"), s.get("type"), s.get("codec"),
                                     bool(s.get("disabled"))) for s in self.streams))


EventSink = Callable[[str, Any], None]  # ("published", Publisher) / ("gone", id)
MemberId = int | str


class VideoRoomServer:
    """A connection to ``end``'s server, following ``end``'s room."""

    def __init__(self, end: RoomEnd) -> None:
        self.end = end
        #: Called with each publisher event (the forwarder whose source this is).
        self.listeners: list[EventSink] = []
        self.conn: JanusConnection | None = None
        self._watch: JanusHandle | None = None
        self._admin: JanusHandle | None = None
        self.watcher_id: MemberId | None = None
        #: the room's id as the server takes it, learned by the join (room_ids)
        self.room: RoomId = end.room

    def __repr__(self) -> str:
        return f"<VideoRoomServer {self.end.name} {self.conn!r}>"

    async def open(self) -> list[Publisher]:
        """Connect and join as a watcher; returns the room's current publishers."""
        self.conn = JanusConnection(self.end.url, api_secret=self.end.api_secret,
                                    ca_file=self.end.ca_file, ca_key=self.end.ca_key)
        await self.conn.open()
        self._admin = await self.conn.attach(PLUGIN)
        self._watch = await self.conn.attach(PLUGIN)
        self._watch.on_event = self._handle
        body: JsonDict = {"request": "join", "ptype": "publisher", "room": self.end.room,
                          "display": WATCHER_DISPLAY}
        if self.end.pin:
            body["pin"] = self.end.pin
        (data, _), self.room = await join_in_server_kind(self._watch.send, body)
        self.watcher_id = server_id(data["id"])
        return [Publisher.from_event(p) for p in data.get("publishers", [])]

    def _handle(self, msg: JsonDict) -> None:
        if msg.get("janus") != "event":
            return
        data: JsonDict = msg.get("plugindata", {}).get("data", {})
        for entry in data.get("publishers", []):
            self._tell("published", Publisher.from_event(entry))
        for key in ("unpublished", "leaving"):
            gone = data.get(key)
            if gone not in (None, "ok"):
                self._tell("gone", server_id(gone))
        if data.get("videoroom") == "destroyed":
            self._tell("destroyed", None)

    def _tell(self, kind: str, arg: Any) -> None:
        for listener in self.listeners:
            listener(kind, arg)

    @property
    def closed(self) -> Any:
        assert self.conn is not None
        return self.conn.closed

    async def close(self) -> None:
        if self.conn is not None:
            if self._watch is not None and not self.conn.closed.done():
                try:
                    await self._watch.send({"request": "leave"}, timeout=2.0)
                except Exception as exc:  # best effort: the session goes anyway
                    log.debug("%s leave: %s", self, exc)
            await self.conn.close()

    # -- requests -------------------------------------------------------------------

    async def request(self, body: JsonDict, timeout: float = 10.0) -> JsonDict:
        assert self._admin is not None, "open() first"
        body = {**body, "room": self.room}
        if self.end.secret:
            body["secret"] = self.end.secret
        data, _ = await self._admin.send(body, timeout=timeout)
        return data

    async def remote_ids(self) -> set[MemberId]:
        """Ids of the room's remote publishers (fed by another server)."""
        data = await self.request({"request": "listparticipants"})
        return {server_id(p["id"]) for p in data.get("participants", []) if p.get("remote")}

    async def participants(self) -> list[JsonDict]:
        data = await self.request({"request": "listparticipants"})
        return list(data.get("participants", []))

    async def add_remote_publisher(self, display: str, streams: list[JsonDict]) -> JsonDict:
        """A publisher fed by plain RTP; returns ``{"id", "ip", "port", "rtcp_port"}``."""
        return await self.request({"request": "add_remote_publisher", "display": display,
                                   "streams": streams})

    async def update_remote_publisher(self, remote_id: MemberId, display: str,
                                      streams: list[JsonDict]) -> None:
        await self.request({"request": "update_remote_publisher", "id": remote_id,
                            "display": display, "streams": streams})

    async def remove_remote_publisher(self, remote_id: MemberId) -> None:
        await self.request({"request": "remove_remote_publisher", "id": remote_id})

    async def publish_remotely(self, publisher_id: MemberId, remote_id: str, host: str,
                               port: int,
                               rtcp_port: int) -> None:
        # Always with rtcp_port: without it keyframe requests from the far side never
        # reach the source, and far video can take seconds to start.
        await self.request({"request": "publish_remotely", "publisher_id": publisher_id,
                            "remote_id": remote_id, "host": host, "port": port,
                            "rtcp_port": rtcp_port})

    async def unpublish_remotely(self, publisher_id: MemberId, remote_id: str) -> None:
        await self.request({"request": "unpublish_remotely", "publisher_id": publisher_id,
                            "remote_id": remote_id})

    async def list_remotes(self, publisher_id: MemberId) -> list[JsonDict]:
        # The request is "listremotes" in the plugin (the documentation says list_remotes).
        data = await self.request({"request": "listremotes", "publisher_id": publisher_id})
        return list(data.get("list", []))

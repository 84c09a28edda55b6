"""A voice-room (AudioBridge) link: one plain-RTP participant in each room, sending each
other their room's mix.

The AudioBridge has no remote publishers. A plain-RTP participant (``join`` with an
``rtp`` object; the room needs ``allow_rtp_participants``) gets what every participant
gets, the room's mix without its own voice, and is mixed in like any member. Two of them,
one per room and each sending to the other, carry each room to the other, and neither
room hears itself back (an ``rtp_forward`` of the whole mix would send the far room's
voices back to it). Because every participant hears the mix without itself, a tree of
such links (a star) carries every room to every other without loops; a ring would echo.

A plain-RTP participant sends nothing until it has received a packet, and with a peer
address it takes packets from that peer only: two of them would wait for each other
forever. So each first joins with no peer, muted, and gets its own room's mix for a
moment through an ``rtp_forward`` (Janus remembers on the handle that media is up).

Janus learns where to send only at ``join`` and picks the local port itself, so each
participant must be told the other's port before it exists. The AudioBridge hands out
its plain-RTP ports in order, two apart: the link takes a port in room A (and gives it
back), asks room B to send to the port after it, then joins room A sending to B, and
checks that A got that very port. If anything else took it meanwhile, it tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from services.room.api import RoomError
from services.room.janus.room_ids import RoomId, join_in_server_kind
from services.room.janus.transport import JanusConnection, JanusHandle, JsonDict
from services.room.links.naming import WATCHER_DISPLAY, linked_display
from services.room.links.settings import LinkSettings, RoomEnd

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.audiobridge"
OPUS_PT = 100
PAIRING_TRIES = 6


class AudioBridgeServer:
    """A connection to ``end``'s server and its plain-RTP participant in ``end``'s room.

    The participant keeps one handle for all its joins: a plain-RTP participant starts
    sending only once it has received a packet (Janus treats the first one as its media
    coming up), and that survives a ``leave`` and a new ``join`` on the same handle.
    """

    def __init__(self, end: RoomEnd) -> None:
        self.end = end
        self.conn: JanusConnection | None = None
        self._handle: JanusHandle | None = None
        self._admin: JanusHandle | None = None
        self._joined = False
        self.port = 0
        self.ip = ""
        #: the room's id as the server takes it, learned by the join (room_ids)
        self.room: RoomId = end.room

    def __repr__(self) -> str:
        return f"<AudioBridgeServer {self.end.name} port={self.port}>"

    async def open(self) -> None:
        self.conn = JanusConnection(self.end.url, api_secret=self.end.api_secret,
                                    ca_file=self.end.ca_file, ca_key=self.end.ca_key)
        await self.conn.open()
        self._handle = await self.conn.attach(PLUGIN)
        self._admin = await self.conn.attach(PLUGIN)

    async def join(self, display: str, send_to: tuple[str, int] | None,
                   muted: bool = False) -> int:
        """Join as a plain-RTP participant (sending the mix to ``send_to``); returns
        the local port the room expects the other side's RTP on."""
        await self.leave()
        assert self._handle is not None, "open() first"
        rtp: JsonDict = {"payload_type": OPUS_PT}
        if send_to is not None:
            rtp.update(ip=send_to[0], port=send_to[1])
        body: JsonDict = {"request": "join", "room": self.room, "display": display,
                          "muted": muted, "rtp": rtp}
        if self.end.pin:
            body["pin"] = self.end.pin
        (data, _), self.room = await join_in_server_kind(self._handle.send, body)
        self._joined = True
        details = data.get("rtp")
        if not isinstance(details, dict) or not details.get("port"):
            raise RoomError(f"{self.end.name}: the room took no plain-RTP participant "
                            "(it needs allow_rtp_participants)", code="LINK_REFUSED")
        self.port = int(details["port"])
        self.ip = str(details.get("ip") or "")
        return self.port

    async def start_media(self, settle_s: float = 0.3) -> None:
        """Have the room send its own mix to our participant for a moment (it is muted
        meanwhile, so nobody hears it): the packet that lets the participant send."""
        assert self._admin is not None
        body: JsonDict = {"request": "rtp_forward", "room": self.room,
                          "host": self.ip or self.rtp_host, "port": self.port,
                          "ptype": OPUS_PT, "always_on": True}
        if self.end.secret:
            body["secret"] = self.end.secret
        data, _ = await self._admin.send(body)
        await asyncio.sleep(settle_s)
        stop: JsonDict = {"request": "stop_rtp_forward", "room": self.room,
                          "stream_id": int(data["stream_id"])}
        if self.end.secret:
            stop["secret"] = self.end.secret
        await self._admin.send(stop)

    async def leave(self) -> None:
        if not self._joined or self._handle is None or self.conn is None:
            return
        self._joined = False
        if not self.conn.closed.done():
            try:
                await self._handle.send({"request": "leave"}, timeout=3.0)
            except (RoomError, TimeoutError) as exc:
                log.debug("%r leave: %s", self, exc)

    @property
    def rtp_host(self) -> str:
        return self.end.media_host or self.end.host

    async def close(self) -> None:
        await self.leave()
        if self.conn is not None:
            await self.conn.close()


class AudioBridgeLinkSession:
    """Both voice rooms, each carrying the other's mix."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self.local = AudioBridgeServer(settings.local)
        self.far = AudioBridgeServer(settings.far)
        self.paired = False

    async def run(self, on_up: Callable[[], None]) -> str:
        await self.local.open()
        await self.far.open()
        await self._pair()
        on_up()
        assert self.local.conn is not None and self.far.conn is not None
        done, _ = await asyncio.wait({asyncio.ensure_future(self.local.conn.closed),
                                      asyncio.ensure_future(self.far.conn.closed)},
                                     return_when=asyncio.FIRST_COMPLETED)
        return str(done.pop().result())

    async def _pair(self) -> None:
        a, b = self.local, self.far
        a_display = linked_display("linked room", b.end.name)  # in a, b's voices
        b_display = linked_display("linked room", a.end.name)
        for side in (a, b):
            await side.join(WATCHER_DISPLAY, None, muted=True)
            await side.start_media()
        for attempt in range(1, PAIRING_TRIES + 1):
            probe = await a.join(WATCHER_DISPLAY, None, muted=True)
            await a.leave()
            expected = probe + 2
            b_port = await b.join(b_display, (a.rtp_host, expected))
            a_port = await a.join(a_display, (b.rtp_host, b_port))
            if a_port == expected:
                self.paired = True
                log.info("voice link %s: %s:%s <-> %s:%s", self.settings.name, a.rtp_host,
                         a_port, b.rtp_host, b_port)
                return
            log.info("voice link %s: port %s taken meanwhile (got %s), try %s again",
                     self.settings.name, expected, a_port, attempt)
            await a.leave()
            await b.leave()
        raise RoomError(f"voice link {self.settings.name}: could not pair the rooms' "
                        f"plain-RTP ports in {PAIRING_TRIES} tries", code="LINK_FAILED")

    async def close(self) -> None:
        await asyncio.gather(self.local.close(), self.far.close(), return_exceptions=True)

    def counts(self) -> dict[str, Any]:
        return {"sent": int(self.paired), "received": int(self.paired)}

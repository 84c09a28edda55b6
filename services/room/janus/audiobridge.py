"""The AudioBridge backend: a voice room where the server mixes everyone for us.

One handle, one peer connection: our mic goes up, the room's mix (everyone but us)
comes down as one Opus stream at 48 kHz and goes into the mixer under the key ``mix``.
Mute state is told to the server (``configure muted``) so every member's roster shows it.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from services.room.api import Role, RoomError
from services.room.context import RoomContext
from services.room.janus.plugin import PluginBackend
from services.room.janus.transport import JanusHandle, JsonDict
from services.room.mixer import MIX_KEY
from services.room.negotiation import offer_opus
from services.room.rtc import (
    accept_answer,
    close_pc,
    make_offer,
    new_pc,
    tap_audio_packets,
    wait_connected,
    watch_failure,
)
from services.room.rtp_send import send_frames

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.audiobridge"
ID_EXISTS = 491


class AudioBridgeBackend(PluginBackend):
    EVENT_KEY = "audiobridge"

    def __init__(self, ctx: RoomContext) -> None:
        super().__init__(ctx)
        self.handle: JanusHandle | None = None
        self.pc: RTCPeerConnection | None = None
        self._muted_sent: bool | None = None

    def _id_taken(self, exc: RoomError) -> bool:
        return "already exists" in str(exc).lower() or f"{ID_EXISTS}" in str(exc)

    def _send_muted(self) -> bool:
        c = self.ctx.controls
        return c.role == "listener" or not c.mic_enabled or c.deaf

    async def enter(self) -> None:
        s = self.ctx.settings
        self.handle = await self.ctx.conn.attach(PLUGIN)
        self.handle.on_event = self._on_event
        body = self._with_pin({"request": "join", "room": s.room, "display": s.display,
                               "id": self.ctx.member_id, "muted": self._send_muted()})
        data = await self._join(self.handle, body)
        self._muted_sent = bool(body["muted"])
        self._joined(data)
        present = set()
        for p in data.get("participants", []):
            present.add(str(p["id"]))
            self._on_participant(p)
        self._forget_absent(present)
        pc = new_pc("audiobridge")
        self.pc = pc
        pc.on("track", self._on_track)
        mic = pc.addTransceiver(self.ctx.mic_track(), direction="sendrecv")
        send_frames(mic.sender)
        offer_opus(mic)
        offer = await make_offer(pc)
        _, answer = await self.handle.send({"request": "configure",
                                            "muted": self._send_muted()}, jsep=offer)
        await accept_answer(pc, answer)
        self.ctx.on_audio_codec("opus")  # the bridge mixes and sends Opus
        await wait_connected(pc, "audiobridge")
        watch_failure(pc, "audiobridge", self.ctx.fail)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.pc is not None:
            for t in self.pc.getTransceivers():
                if t.receiver.track is track:
                    tap_audio_packets(t.receiver)
            self.ctx.on_remote_audio(MIX_KEY, track)

    async def exit(self) -> None:
        self._closing = True
        await self.ctx.mixer.remove(MIX_KEY)
        await self._leave(self.handle)
        if self.pc is not None:
            await close_pc(self.pc)
        if self.handle is not None:
            await self.handle.detach()

    async def update_mic(self) -> None:
        muted = self._send_muted()
        if self.handle is not None and muted != self._muted_sent:
            await self.handle.send({"request": "configure", "muted": muted})
            self._muted_sent = muted

    async def set_role(self, role: Role) -> None:
        # The same connection carries both roles: a listener sends silence, muted.
        await self.update_mic()

    async def moderate(self, member_id: str, muted: bool) -> None:
        assert self.handle is not None
        await self.handle.send(self._moderation("mute" if muted else "unmute", member_id))

    async def kick(self, member_id: str) -> None:
        assert self.handle is not None
        await self.handle.send(self._moderation("kick", member_id))

    def _on_participant(self, p: JsonDict) -> None:
        member_id = str(p["id"])
        if member_id == self.local_id:
            muted = bool(p.get("muted", False))
            if self._muted_sent is not None and muted != self._muted_sent:
                self.ctx.on_moderated("audio", muted)
                self._muted_sent = muted
            return
        self.ctx.roster.upsert(member_id, display=p.get("display", ""), role="publisher",
                               audio_muted=bool(p.get("muted", False)), has_audio=True)
        if "talking" in p:
            self.ctx.roster.server_talking(member_id, bool(p["talking"]))

    def _on_event(self, msg: JsonDict) -> None:
        event = self._room_event(msg, "voice room")
        if event is None:
            return
        what, data = event
        for p in data.get("participants", []):
            self._on_participant(p)
        leaving = data.get("leaving")
        if leaving is not None:
            self.ctx.roster.remove(str(leaving))
        kicked = data.get("kicked")
        if kicked is not None:
            if str(kicked) == self.local_id:
                self.ctx.kick("kicked by a moderator")
            else:
                self.ctx.roster.remove(str(kicked))
        if data.get("result") == "ok" and what == "left" and not self._closing:
            self.ctx.kick("removed from the room")

    def peer_connections(self) -> dict[str, Any]:
        return {"audiobridge": self.pc} if self.pc is not None else {}

    def member_receivers(self) -> dict[str, list[Any]]:
        if self.pc is None:
            return {}
        return {MIX_KEY: [t.receiver for t in self.pc.getTransceivers()]}

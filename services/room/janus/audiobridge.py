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
from services.room.janus.transport import JanusHandle, JsonDict
from services.room.rtc import (
    accept_answer,
    make_offer,
    new_pc,
    shorten_audio_jitter_buffer,
    wait_connected,
    watch_failure,
)

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.audiobridge"
ID_EXISTS = 491
MIX_KEY = "mix"


class AudioBridgeBackend:
    def __init__(self, ctx: RoomContext) -> None:
        self.ctx = ctx
        self.local_id = ""
        self.handle: JanusHandle | None = None
        self.pc: RTCPeerConnection | None = None
        self._closing = False
        self._muted_sent: bool | None = None

    def __repr__(self) -> str:
        return f"<AudioBridgeBackend room={self.ctx.settings.room} id={self.local_id}>"

    def _send_muted(self) -> bool:
        c = self.ctx.controls
        return c.role == "listener" or not c.mic_enabled or c.deaf

    async def enter(self) -> None:
        s = self.ctx.settings
        self.handle = await self.ctx.conn.attach(PLUGIN)
        self.handle.on_event = self._on_event
        body: JsonDict = {"request": "join", "room": s.room, "display": s.display,
                          "id": self.ctx.member_id, "muted": self._send_muted()}
        if s.pin:
            body["pin"] = s.pin
        try:
            data, _ = await self.handle.send(body)
        except RoomError as exc:
            if "already exists" not in str(exc).lower() and f"{ID_EXISTS}" not in str(exc):
                raise
            body.pop("id")
            data, _ = await self.handle.send(body)
        self._muted_sent = bool(body["muted"])
        self.local_id = str(data["id"])
        self.ctx.roster.local_id = self.local_id
        self.ctx.on_joined(self.local_id)
        present = set()
        for p in data.get("participants", []):
            present.add(str(p["id"]))
            self._on_participant(p)
        for member_id in self.ctx.roster.ids() - present:
            self.ctx.roster.remove(member_id)
        pc = new_pc("audiobridge")
        self.pc = pc
        pc.on("track", self._on_track)
        pc.addTransceiver(self.ctx.mic_track(), direction="sendrecv")
        offer = await make_offer(pc)
        _, answer = await self.handle.send({"request": "configure",
                                            "muted": self._send_muted()}, jsep=offer)
        await accept_answer(pc, answer)
        await wait_connected(pc, "audiobridge")
        watch_failure(pc, "audiobridge", self.ctx.fail)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.pc is not None:
            for t in self.pc.getTransceivers():
                if t.receiver.track is track:
                    shorten_audio_jitter_buffer(t.receiver)
            self.ctx.on_remote_audio(MIX_KEY, track)

    async def exit(self) -> None:
        self._closing = True
        await self.ctx.mixer.remove(MIX_KEY)
        if self.handle is not None and not self.ctx.conn.closed.done():
            try:
                await self.handle.send({"request": "leave"}, timeout=2.0)
            except (RoomError, TimeoutError) as exc:
                log.debug("leave: %s", exc)
        if self.pc is not None:
            await self.pc.close()
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

    def _secret(self) -> str:
        if not self.ctx.settings.secret:
            raise RoomError("moderation needs room.secret in the config", code="NO_SECRET")
        return self.ctx.settings.secret

    async def moderate(self, member_id: str, muted: bool) -> None:
        assert self.handle is not None
        await self.handle.send({"request": "mute" if muted else "unmute",
                                "room": self.ctx.settings.room, "secret": self._secret(),
                                "id": int(member_id)})

    async def kick(self, member_id: str) -> None:
        assert self.handle is not None
        await self.handle.send({"request": "kick", "room": self.ctx.settings.room,
                                "secret": self._secret(), "id": int(member_id)})

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
            self.ctx.roster.set_talking(member_id, bool(p["talking"]))

    def _on_event(self, msg: JsonDict) -> None:
        kind = msg.get("janus")
        if kind == "hangup":
            if not self._closing:
                self.ctx.fail(f"server hung up the voice room: {msg.get('reason')}")
            return
        if kind != "event":
            return
        data = msg.get("plugindata", {}).get("data", {})
        what = data.get("audiobridge")
        if what in ("talking", "stopped-talking"):
            member_id = str(data.get("id"))
            if member_id == self.local_id:
                self.ctx.on_local_talking(what == "talking")
            else:
                self.ctx.roster.set_talking(member_id, what == "talking")
            return
        if what == "destroyed":
            self.ctx.fail("the room was destroyed")
            return
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

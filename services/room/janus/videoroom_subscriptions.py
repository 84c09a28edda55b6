"""The VideoRoom backend's receiving side: one multistream subscriber handle (Janus 1.x)
that carries every stream we receive, kept in step with the announced publishers.

The streams wanted are the audio of every publisher and, while something consumes remote
video, the video streams in a codec the box can decode. Changes go out as ``update``
requests (subscribe/unsubscribe); the server's offers are answered on one peer
connection, and each received track is routed to the member that owns its mid: audio to
the mixer, video to the consumer (or drained). Part of
:class:`services.room.janus.videoroom.VideoRoomBackend`.
"""

from __future__ import annotations

import asyncio
import logging

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from services.room.api import RoomError
from services.room.janus.plugin import PluginBackend
from services.room.janus.room_ids import wire_id
from services.room.janus.transport import JanusHandle, JsonDict
from services.room.janus.video_pause import VideoPause
from services.room.negotiation import PRODUCIBLE
from services.room.rtc import (
    answer_offer,
    close_pc,
    new_pc,
    tap_audio_packets,
    wait_connected,
    watch_failure,
)
from services.room.video_gate import gate_video_frames

log = logging.getLogger("services.room.janus.videoroom")

PLUGIN = "janus.plugin.videoroom"
NO_SUCH_FEED = 428


class VideoRoomSubscriptions(PluginBackend):
    sub: JanusHandle | None
    sub_pc: RTCPeerConnection | None
    publishers: dict[str, JsonDict]
    _subscribed: set[tuple[str, str]]
    _mid_feed: dict[str, tuple[str, str]]
    _mid_track: dict[str, MediaStreamTrack]
    _audio_owner: dict[str, str]
    _lock: asyncio.Lock
    _dirty: asyncio.Event
    _stale: bool
    _pause: VideoPause
    _tasks: list[asyncio.Task[None]]
    _video_tasks: dict[str, asyncio.Task[None]]

    def _desired(self) -> set[tuple[str, str]]:
        want = set()
        video = self.ctx.wants_video()
        for feed, entry in self.publishers.items():
            for st in entry.get("streams", []):
                kind = st.get("type")
                if kind == "audio" or (kind == "video" and video
                                       and str(st.get("codec", "vp8")).lower() in PRODUCIBLE):
                    want.add((feed, str(st["mid"])))
        return want

    def video_demand_changed(self) -> None:
        """Something started or stopped consuming remote video: resubscribe to match."""
        self._dirty.set()

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                async with self._lock:
                    await self._sync()
                    if self.sub is not None:
                        await self._pause.apply(self.sub, self._mid_feed,
                                                self.ctx.wants_member_video)
            except asyncio.CancelledError:
                raise
            except RoomError as exc:
                log.warning("subscription update failed: %s", exc)
                self.ctx.fail(f"subscription update failed: {exc}")
                return
            except Exception as exc:
                log.exception("subscription update failed")
                self.ctx.fail(f"subscription update failed: {exc}")
                return

    async def _sync(self) -> None:
        want = self._desired()
        add = want - self._subscribed
        remove = self._subscribed - want
        if not add and not remove:
            return
        if add and self._stale and self.sub is not None:
            # Janus would put the new streams into m-lines that carried a departed
            # feed; a fresh subscription is simpler and just as quick.
            await self._drop_subscription()
            add = want
        streams = [{"feed": wire_id(f, self.room), "mid": m} for f, m in sorted(add)]
        if self.sub is None:
            self.sub = await self.ctx.conn.attach(PLUGIN)
            self.sub.on_event = self._on_sub_event
            body = self._with_pin({"request": "join", "ptype": "subscriber",
                                   "room": self.room, "streams": streams, "use_msid": False,
                                   **({"private_id": self.private_id}
                                      if self.private_id is not None else {})})
            try:
                data, offer = await self.sub.send(body)
            except RoomError as exc:
                if f"Janus error {NO_SUCH_FEED}" not in str(exc):
                    raise
                # A feed left between its announcement and our request: try again
                # with the publishers as they are now.
                log.info("subscription: %s; retrying", exc)
                sub, self.sub = self.sub, None
                await sub.detach()
                await asyncio.sleep(0.05)
                self._dirty.set()
                return
            self._subscribed = set(add)
            await self._answer(data, offer)
            return
        body = {"request": "update"}
        if remove:
            self._stale = True
        if add:
            body["subscribe"] = streams
        if remove:
            body["unsubscribe"] = [{"feed": wire_id(f, self.room), "mid": m}
                                    for f, m in sorted(remove)]
        self._subscribed = (self._subscribed - remove) | add
        try:
            data, offer = await self.sub.send(body)
        except RoomError as exc:
            if f"Janus error {NO_SUCH_FEED}" not in str(exc) or not remove:
                raise
            # A feed we drop went away on its own first: ask again for what is left.
            log.info("subscription update: %s; retrying without removals", exc)
            if not add:
                return
            data, offer = await self.sub.send({"request": "update", "subscribe": streams})
        if offer is not None:
            await self._answer(data, offer)

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Own a short task (awaited on exit); forget the ones that are done."""
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(task)

    async def _drop_subscription(self) -> None:
        sub, pc = self.sub, self.sub_pc
        self.sub = self.sub_pc = None
        for task in self._video_tasks.values():
            task.cancel()
        await asyncio.gather(*self._video_tasks.values(), return_exceptions=True)
        self._video_tasks.clear()
        for feed in set(self._audio_owner.values()):
            await self.ctx.mixer.remove(feed)
        self._audio_owner.clear()
        self._mid_track.clear()
        self._mid_feed = {}
        self._subscribed = set()
        self._stale = False
        self._pause.reset()
        if sub is not None:
            sub.on_event = None  # its hangup is ours, not a failure
        if pc is not None:
            pc.remove_all_listeners("connectionstatechange")
            await close_pc(pc)
        if sub is not None:
            await sub.detach()

    def _on_sub_event(self, msg: JsonDict) -> None:
        if msg.get("janus") == "hangup" and not self._closing:
            self.ctx.fail(f"server hung up the subscription: {msg.get('reason')}")
            return
        jsep = msg.get("jsep")
        data = msg.get("plugindata", {}).get("data", {})
        if jsep is not None and jsep.get("type") == "offer":
            # An update the server made on its own (a feed went away).
            task = asyncio.create_task(self._answer_locked(self.sub, data, jsep),
                                       name="videoroom:renegotiate")
            self._keep(task)

    async def _answer_locked(self, handle: JanusHandle | None, data: JsonDict,
                             offer: JsonDict) -> None:
        try:
            async with self._lock:
                if handle is None or handle is not self.sub:
                    return  # that subscription was replaced meanwhile
                await self._answer(data, offer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("renegotiation failed: %s", exc)
            self.ctx.fail(f"renegotiation failed: {exc}")

    async def _answer(self, data: JsonDict, offer: JsonDict | None) -> None:
        assert self.sub is not None
        if offer is None:
            raise RoomError("the room server sent no subscription offer",
                            code="NEGOTIATION_FAILED")
        first = self.sub_pc is None
        if first:
            self.sub_pc = new_pc("subscriber", max_bundle=True)
            self.sub_pc.on("track", self._on_track)
        pc = self.sub_pc
        assert pc is not None
        if "streams" in data:
            mapping = {}
            for st in data["streams"]:
                if st.get("active", True) and st.get("feed_id") is not None:
                    mapping[str(st["mid"])] = (str(st["feed_id"]), str(st.get("type")))
                else:
                    self._stale = True
            self._mid_feed = mapping
        log.debug("subscription offer: %s", self._mid_feed)
        answer = await answer_offer(pc, offer)
        await self.sub.send({"request": "start"}, jsep=answer)
        if first:
            await wait_connected(pc, "subscriber")
            watch_failure(pc, "subscriber", self.ctx.fail)
        self._rebind()

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.sub_pc is not None
        for t in self.sub_pc.getTransceivers():
            if t.receiver.track is track and t.mid is not None:
                self._mid_track[t.mid] = track
                if track.kind == "audio":
                    tap_audio_packets(t.receiver)
                else:
                    gate_video_frames(t.receiver, self.ctx.shows_video)
        self._rebind()

    def _rebind(self) -> None:
        """Route each received track to the member that now owns its mid."""
        for mid, track in self._mid_track.items():
            owner = self._mid_feed.get(mid)
            if track.kind == "audio":
                old = self._audio_owner.get(mid)
                new = owner[0] if owner else None
                if old == new:
                    continue
                if old is not None:
                    self._audio_owner.pop(mid)
                    self._keep(asyncio.create_task(self.ctx.mixer.remove(old),
                                                   name="mixer:remove"))
                if new is not None:
                    self._audio_owner[mid] = new
                    self.ctx.on_remote_audio(new, track)
            elif mid not in self._video_tasks:
                self._video_tasks[mid] = asyncio.create_task(
                    self._drain_video(mid, track), name=f"videoroom:video:{mid}")

    async def _drain_video(self, mid: str, track: MediaStreamTrack) -> None:
        """Every received video track must be consumed (aiortc queues without bound)."""
        try:
            while True:
                frame = await track.recv()
                owner = self._mid_feed.get(mid)
                if owner is not None:
                    self.ctx.on_remote_video(owner[0], frame)
        except MediaStreamError:
            return

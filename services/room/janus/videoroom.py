"""The VideoRoom backend: publish mic and camera, subscribe to everyone else.

One handle publishes (or, for a listener, only joins and listens to room events); one
multistream subscriber handle (Janus 1.x) carries every stream we receive, updated with
``update`` (subscribe/unsubscribe) as publishers come and go
(:mod:`services.room.janus.videoroom_subscriptions`). Subscriptions follow the
``publishers`` events, so a feed is only asked for once Janus announces it. With
``receive_video`` off only the audio streams are requested, and video streams in a codec
the box cannot decode are never requested.

The camera is offered in the codecs the box can produce (H.264, VP8); the room picks one
by its own order and the track then produces exactly that codec. A room that allows none
of them rejects the video: the box then publishes its audio alone and stays in the room,
with a ``room-warning`` (``VIDEO_CODEC_UNSUPPORTED``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from services.room import deadline
from services.room.api import NotInRoom, Role, RoomError, RoomFull
from services.room.context import RoomContext
from services.room.janus.room_list import learn_talk_events, room_entry
from services.room.janus.transport import JanusHandle, JsonDict
from services.room.janus.video_pause import VideoPause
from services.room.janus.videoroom_subscriptions import PLUGIN, VideoRoomSubscriptions
from services.room.negotiation import (
    AUDIO_CODEC_UNSUPPORTED,
    PRODUCIBLE,
    ROOM_FULL,
    answered_codec,
    audio_unsupported_warning,
    offer_narrowband,
    offer_opus,
    offer_producible,
    room_codecs,
    room_full_warning,
)
from services.room.rtc import (
    accept_answer,
    close_pc,
    make_offer,
    new_pc,
    wait_connected,
    watch_failure,
)
from services.room.rtp_send import send_frames

log = logging.getLogger(__name__)

ID_EXISTS = 436
#: How long an unpublish waits for the server to hang the withdrawn PC up.
WITHDRAW_HANGUP_S = 2.0


class VideoRoomBackend(VideoRoomSubscriptions):
    EVENT_KEY = "videoroom"

    def __init__(self, ctx: RoomContext) -> None:
        super().__init__(ctx)
        self.pub: JanusHandle | None = None
        self.pub_pc: RTCPeerConnection | None = None
        self.sub: JanusHandle | None = None
        self.sub_pc: RTCPeerConnection | None = None
        self.publishers: dict[str, JsonDict] = {}  # feed id -> publisher entry
        self._subscribed: set[tuple[str, str]] = set()  # (feed, feed mid)
        self._mid_feed: dict[str, tuple[str, str]] = {}  # our mid -> (feed, kind)
        self._mid_track: dict[str, MediaStreamTrack] = {}
        self._audio_owner: dict[str, str] = {}  # our mid -> feed whose audio we mix
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._stale = False  # some m-lines of the subscription carry no feed any more
        self._tasks: list[asyncio.Task[None]] = []
        self._video_tasks: dict[str, asyncio.Task[None]] = {}
        #: Resolved by the server's hangup of a publisher PC we withdrew ourselves.
        self._withdrawal: asyncio.Future[None] | None = None
        self._pause = VideoPause()  # video of members the box does not show
        #: The room had all the publishers it takes: listening, trying again whenever
        #: a publisher stops.
        self._seat_wait = False
        self._seat_task: asyncio.Task[None] | None = None

    def _id_taken(self, exc: RoomError) -> bool:
        return f"Janus error {ID_EXISTS}" in str(exc)

    # -- entering and leaving -------------------------------------------------------------

    async def enter(self) -> None:
        s = self.ctx.settings
        self.pub = await self.ctx.conn.attach(PLUGIN)
        self.pub.on_event = self._on_pub_event
        data = await self._join(self.pub, self._with_pin(
            {"request": "join", "ptype": "publisher", "room": s.room,
             "display": s.display, "id": self.ctx.member_id}))
        self._joined(data)
        present = set()
        for entry in data.get("publishers", []):
            present.add(str(entry["id"]))
            self._on_publisher(entry)
        for entry in data.get("attendees", []):
            present.add(str(entry["id"]))
            self.ctx.roster.upsert(str(entry["id"]), display=entry.get("display", ""),
                                   role="listener")
        self._forget_absent(present)
        self._tasks.append(asyncio.create_task(
            learn_talk_events(self.pub, self.room, self.ctx.roster.levels), name="videoroom:talk"))
        if self.ctx.controls.role == "publisher":
            await self._take_seat()
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="videoroom:subscriptions"))
        self._dirty.set()

    async def exit(self) -> None:
        self._closing = True
        tasks = self._tasks + list(self._video_tasks.values())
        if self._seat_task is not None:
            tasks.append(self._seat_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._video_tasks.clear()
        for feed in set(self._audio_owner.values()):
            await self.ctx.mixer.remove(feed)
        await self._leave(self.pub)
        for pc in (self.pub_pc, self.sub_pc):
            if pc is not None:
                await close_pc(pc)
        for handle in (self.sub, self.pub):
            if handle is not None:
                await handle.detach()

    # -- publishing -----------------------------------------------------------------------

    async def _take_seat(self) -> None:
        """Publish; in a room that has all the publishers it takes (Janus's
        ``publishers``, 6 in its demo room), listen instead, with a ``ROOM_FULL`` warning,
        and try again whenever a publisher stops."""
        try:
            await self._publish()
        except RoomFull as exc:
            self._seat_wait = True
            self.ctx.on_audio_codec(None)
            self.ctx.on_warning(ROOM_FULL, room_full_warning(str(exc)))
            return
        if self._seat_wait:
            log.info("room: a publisher stopped: publishing now")
        self._seat_wait = False
        self.ctx.on_warning(ROOM_FULL, None)

    def _seat_freed(self) -> None:
        """A publisher stopped: if we wait for a place, try to take it."""
        if (not self._seat_wait or self._closing or self.ctx.controls.role != "publisher"
                or (self._seat_task is not None and not self._seat_task.done())):
            return
        self._seat_task = asyncio.create_task(self._retake_seat(), name="videoroom:seat")

    async def _retake_seat(self) -> None:
        try:
            await self._take_seat()
        except RoomError as exc:  # as a publish that fails on entering: the stay fails
            self.ctx.fail(f"publishing once a place freed up: {exc}")

    async def _publish(self, video: bool = True, audio: str | None = "opus") -> None:
        """Publish the mic (``audio``: ``opus``; ``narrowband`` where the room refused Opus;
        None where it refused that too) and, when ``video``, the camera."""
        assert self.pub is not None
        track = self.ctx.video_track() if video else None
        if audio is None and track is None:
            log.warning("room: it takes none of what we send: publishing nothing")
            return
        pc = new_pc("publisher")
        self.pub_pc = pc
        mic_track = self.ctx.mic_track() if audio is not None else None
        mic = pc.addTransceiver(mic_track, direction="sendonly") if mic_track else None
        if mic is not None:
            send_frames(mic.sender)
            (offer_narrowband if audio == "narrowband" else offer_opus)(mic)
        transceiver = None
        if track is not None:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            send_frames(transceiver.sender)
            offer_producible(transceiver)
        offer = await make_offer(pc)
        body = {"request": "publish", "display": self.ctx.settings.display}
        try:
            _, answer = await self.pub.send(body, jsep=offer)
        except RoomError:
            await self._drop(pc, mic_track, track, withdraw=False)  # nothing was published
            await self.pub.hangup()  # the server's side of the offer, or the next one fails
            raise
        if answer is not None and mic is not None:
            chosen = answered_codec(answer["sdp"], mic.mid, "audio")
            if chosen is None:
                log.warning("the room refused our %s audio", audio)
                await self._drop(pc, mic_track, track)
                if audio == "narrowband":
                    self.ctx.on_audio_codec(None)
                    self.ctx.on_warning(AUDIO_CODEC_UNSUPPORTED, audio_unsupported_warning(
                        await room_entry(self.pub, self.room)))
                await self._publish(video, "narrowband" if audio == "opus" else None)
                return
            mic_track.use_codec(chosen)  # type: ignore[union-attr]
            self.ctx.on_audio_codec(chosen)
        if track is not None and transceiver is not None and answer is not None:
            codec = answered_codec(answer["sdp"], transceiver.mid)
            if codec not in PRODUCIBLE:
                await self._publish_audio_only(pc, mic_track, track, codec, audio)
                return
            set_codec = getattr(track, "set_codec", None)
            if set_codec is not None:
                set_codec(codec)
            self.ctx.on_video_codec(codec, None)
        await accept_answer(pc, answer)
        await wait_connected(pc, "publisher")
        watch_failure(pc, "publisher", self.ctx.fail)

    async def _drop(self, pc: RTCPeerConnection, *tracks: Any, withdraw: bool = True) -> None:
        """Let go of a publisher PC the room refused (withdrawn if it answered, closed if
        it refused the request) and stop its tracks (the camera closes unless in use)."""
        if self.pub_pc is pc:
            self.pub_pc = None
        for track in tracks:
            if track is not None:
                track.stop()
        if not withdraw:
            await close_pc(pc)
            return
        try:
            await self._withdraw(pc)
        except RoomError as exc:
            log.debug("unpublish after the refused offer: %s", exc)

    async def _publish_audio_only(self, rejected: RTCPeerConnection, mic_track: Any,
                                  track: Any, codec: str | None, audio: str | None) -> None:
        """The room took none of our video codecs: withdraw that publish, publish the audio
        alone, and say which codecs the room wants."""
        assert self.pub is not None
        log.warning("the room refused our video (%s); publishing audio only",
                    f"answered {codec}" if codec else "no common codec")
        await self._drop(rejected, mic_track, track)
        wanted = room_codecs(await room_entry(self.pub, self.room))
        self.ctx.on_video_codec(None, wanted or [])
        await self._publish(video=False, audio=audio)

    async def _unpublish(self) -> None:
        if self.pub is not None and self.pub_pc is not None:
            pc, self.pub_pc = self.pub_pc, None
            await self._withdraw(pc)

    async def _withdraw(self, pc: RTCPeerConnection) -> None:
        """Unpublish ``pc`` and close it. The server then hangs that PC up ("Close PC"):
        that hangup is expected, and is waited for (briefly) so that it cannot be taken
        for the failure of a publisher made after it. Not being the failure it looks
        like, it must not tear the room down."""
        assert self.pub is not None
        pc.remove_all_listeners("connectionstatechange")
        withdrawal = self._withdrawal = asyncio.get_running_loop().create_future()
        try:
            try:
                await self.pub.send({"request": "unpublish"})
            finally:
                await close_pc(pc)
            await deadline.wait_for(asyncio.shield(withdrawal), WITHDRAW_HANGUP_S)
        except TimeoutError:
            log.debug("no hangup from the server after unpublishing")
        finally:
            if self._withdrawal is withdrawal:
                self._withdrawal = None

    async def set_role(self, role: Role) -> None:
        if role == "publisher" and self.pub_pc is None:
            await self._take_seat()
        elif role == "listener":
            if self.pub_pc is not None:
                await self._unpublish()
            if self._seat_wait:
                self._seat_wait = False
                self.ctx.on_warning(ROOM_FULL, None)

    async def update_mic(self) -> None:
        return None  # the mic track itself sends silence while muted

    # -- moderation -----------------------------------------------------------------------

    async def moderate(self, member_id: str, muted: bool) -> None:
        assert self.pub is not None
        entry = self.publishers.get(member_id)
        if entry is None:
            raise NotInRoom(f"member {member_id} publishes nothing to moderate")
        mids = [st["mid"] for st in entry.get("streams", []) if st.get("type") == "audio"]
        for mid in mids:
            await self.pub.send({**self._moderation("moderate", member_id),
                                 "mid": mid, "mute": muted})

    async def kick(self, member_id: str) -> None:
        assert self.pub is not None
        await self.pub.send(self._moderation("kick", member_id))

    # -- room events ----------------------------------------------------------------------

    def _on_pub_event(self, msg: JsonDict) -> None:
        if msg.get("janus") == "hangup" and self._withdrawn_hangup(msg):
            return
        event = self._room_event(msg, "publisher")
        if event is None:
            return
        what, data = event
        if what != "event":
            return
        for entry in data.get("publishers", []):
            self._on_publisher(entry)
        if "joining" in data:
            j = data["joining"]
            self.ctx.roster.upsert(str(j["id"]), display=j.get("display", ""), role="listener")
        gone = data.get("unpublished")
        if gone is not None and gone != "ok":
            self._drop_publisher(str(gone), left=False)
            self._seat_freed()
        leaving = data.get("leaving", data.get("kicked"))
        if leaving == "ok":
            if data.get("reason") == "kicked":
                self.ctx.kick("kicked by a moderator")
        elif leaving is not None:
            self._drop_publisher(str(leaving), left=True)
            self._seat_freed()
        if "moderation" in data or "muted" in data:
            log.info("moderation event: %s", data)

    def _withdrawn_hangup(self, msg: JsonDict) -> bool:
        """Whether a hangup on the publisher handle ends a PC we withdrew (unpublished,
        or a refused publish), or comes while we publish nothing: no failure then."""
        withdrawal = self._withdrawal
        if withdrawal is not None and not withdrawal.done():
            withdrawal.set_result(None)
            log.debug("server hung up the withdrawn publisher: %s", msg.get("reason"))
            return True
        if self.pub_pc is None:
            log.debug("server hung up the publisher while none is published: %s",
                      msg.get("reason"))
            return True
        return False

    def _on_publisher(self, entry: JsonDict) -> None:
        feed = str(entry["id"])
        if feed == self.local_id:
            self._on_self_update(entry)
            return
        streams = [st for st in entry.get("streams", []) if not st.get("disabled")]
        entry = {**entry, "streams": streams}
        self.publishers[feed] = entry
        audio = [st for st in streams if st.get("type") == "audio"]
        self.ctx.roster.upsert(
            feed, display=entry.get("display", ""), role="publisher",
            has_audio=bool(audio), has_video=any(st.get("type") == "video" for st in streams),
            audio_muted=any(st.get("moderated") for st in audio),
        )
        if "talking" in entry:  # someone already talking when we arrive
            self.ctx.roster.server_talking(feed, bool(entry["talking"]))
        self._dirty.set()

    def _on_self_update(self, entry: JsonDict) -> None:
        for st in entry.get("streams", []):
            if st.get("type") == "audio" and "moderated" in st:
                self.ctx.on_moderated("audio", bool(st["moderated"]))

    def _drop_publisher(self, feed: str, left: bool) -> None:
        self.publishers.pop(feed, None)
        for mid, owner in list(self._audio_owner.items()):
            if owner == feed:  # stop mixing them now, not at the next renegotiation
                del self._audio_owner[mid]
                self._keep(asyncio.create_task(self.ctx.mixer.remove(feed),
                                               name="mixer:remove"))
        if left:
            self.ctx.roster.remove(feed)
        elif feed in self.ctx.roster:
            self.ctx.roster.upsert(feed, role="listener", has_audio=False, has_video=False,
                                   talking=False)
        self._dirty.set()

    # -- stats ----------------------------------------------------------------------------

    def peer_connections(self) -> dict[str, Any]:
        return {k: v for k, v in (("publisher", self.pub_pc), ("subscriber", self.sub_pc))
                if v is not None}

    def member_receivers(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        if self.sub_pc is None:
            return out
        for t in self.sub_pc.getTransceivers():
            owner = self._mid_feed.get(t.mid or "")
            if owner is not None:
                out.setdefault(owner[0], []).append(t.receiver)
        return out

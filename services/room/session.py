"""JanusRoomSession: the :class:`~services.room.api.RoomSession` on a Janus server.

One task (``room:session``) keeps the box in the room: connect, join through the
configured plugin, open the message channel, then wait until something breaks (socket
drop, ICE/DTLS failure, server hangup or restart) and rejoin after a backoff with full
jitter (first retry within 300 ms, never more than 10 s). Errors a retry cannot fix
(wrong PIN, unknown room, not authorized) are reported once and the session stops in
``error``. Controls live here, so they survive every rejoin.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from drivers.audio.base import MicSource, SpeakerSink
from drivers.base import Emit, null_emit
from services.room.api import (
    PERMANENT_ERRORS,
    Controls,
    Member,
    NotInRoom,
    Priority,
    Role,
    RoomError,
    RoomState,
)
from services.room.context import Backend, RoomContext, RoomSettings
from services.room.janus.audiobridge import AudioBridgeBackend
from services.room.janus.textroom import TextRoom
from services.room.janus.transport import JanusConnection
from services.room.janus.videoroom import VideoRoomBackend
from services.room.messages import CMD_HAND, CMD_MODERATED, encode_custom, parse_custom
from services.room.micuse import RoomMicUse
from services.room.mixer import RemoteAudioMixer
from services.room.negotiation import VIDEO_CODEC_UNSUPPORTED, unsupported_warning
from services.room.ratelimit import MessageLimiter, Outgoing
from services.room.roster import Roster
from services.room.stats import StatsCollector
from services.room.tracks import MicTrack, SwitchableVideoTrack

log = logging.getLogger(__name__)

class _Kicked(Exception):
    pass


def reconnect_delay(attempt: int, base: float = 0.3, cap: float = 10.0) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); attempt 0 is <= ``base``."""
    return random.uniform(0.0, min(cap, base * (2 ** min(attempt, 16))))


class JanusRoomSession:
    def __init__(self, settings: RoomSettings, *, mic: MicSource | None = None,
                 speaker: SpeakerSink | None = None,
                 video_track_factory: Callable[[], MediaStreamTrack] | None = None,
                 emit: Emit = null_emit, controls: Controls | None = None,
                 on_remote_video: Callable[[str, Any], None] | None = None,
                 mixer: RemoteAudioMixer | None = None) -> None:
        self.settings = settings
        self.mic = mic
        self.speaker = speaker
        self.video_track_factory = video_track_factory
        self._emit = emit
        self._controls = controls or Controls(role=settings.role)
        if not settings.send_video:
            self._controls.video_enabled = False
        self._on_remote_video = on_remote_video
        self.mixer = mixer or RemoteAudioMixer(speaker)
        self.roster = Roster(emit)
        self.limiter = MessageLimiter()
        self._stats_collector = StatsCollector()
        self._state = RoomState.IDLE
        self._runner: asyncio.Task[None] | None = None
        self._joined: asyncio.Future[None] | None = None
        self._backend: Backend | None = None
        self._ctx: RoomContext | None = None
        self._textroom: TextRoom | None = None
        self._video: list[SwitchableVideoTrack] = []
        self._member_id = secrets.randbelow(2**52) + 1
        self._local_talking = False
        self._speaker_started = False
        self._closed = False
        self._conn: JanusConnection | None = None
        self._mic_use = RoomMicUse(mic, self._room_uses_mic, emit)
        self.join_count = 0
        #: The codec the room chose for our camera (None: not publishing video).
        self.video_codec: str | None = None
        #: Conditions worth knowing that do not stop the room (``room-warning`` events).
        self.warnings: list[dict[str, Any]] = []
        self.last_join_ms: float | None = None
        self.attempts = 0
        self.built_from: object | None = None  # the config it was made from (wiring)
        #: what is mixed into every frame the mic track sends (playbacks into the room)
        self.send_mix: Callable[[bytes], bytes] | None = None
        #: True when the box tells its own talking (input sensitivity), not the server
        self.local_talk_detected = False
        self._apply_speaker()

    def __repr__(self) -> str:
        return (f"<JanusRoomSession {self.settings.backend} room={self.settings.room} "
                f"{self._state} members={len(self.roster.members())}>")

    # -- contract: state ------------------------------------------------------------------

    @property
    def state(self) -> RoomState:
        return self._state

    @property
    def controls(self) -> Controls:
        return self._controls

    @property
    def local_id(self) -> str | None:
        return self.roster.local_id

    def members(self) -> list[Member]:
        return self.roster.members()

    def stats(self) -> dict[str, Any]:
        return dict(self._stats_collector.latest)

    def _set_state(self, new: RoomState, reason: str = "") -> None:
        old = self._state
        if old == new:
            return
        self._state = new
        log.info("room: %s -> %s%s", old, new, f" ({reason})" if reason else "")
        self._emit("room-state", {"old": str(old), "new": str(new), "reason": reason})
        self._mic_use.changed()

    # -- the mic: open only while the room uses it -----------------------------------------

    def _room_uses_mic(self) -> bool:
        c = self._controls
        return (not self._closed and self._state == RoomState.IN_ROOM
                and c.role == "publisher" and not c.deaf)

    @property
    def mic_open(self) -> bool:
        """True while the room holds the mic open (it may be muted: then silence is sent)."""
        return self._mic_use.open

    def keepalive_progress(self) -> float | None:
        """For the watchdog: when the Janus session last answered (or was created) while
        in the room; None when not in a room."""
        conn = self._conn
        if conn is None or self._state != RoomState.IN_ROOM:
            return None
        return conn.last_answer_at

    # -- joining and leaving --------------------------------------------------------------

    async def set_room(self, room: int) -> None:
        """Use another room number from the next join (leaves the current room)."""
        if room != self.settings.room:
            await self.leave()
            self.settings = replace(self.settings, room=room)

    async def join(self) -> None:
        if self._closed:
            raise RoomError("the room session is closed")
        if self._runner is None or self._runner.done():
            self._joined = asyncio.get_running_loop().create_future()
            self._runner = asyncio.create_task(self._run(), name="room:session")
        assert self._joined is not None
        await asyncio.shield(self._joined)

    async def leave(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if self._joined is not None and not self._joined.done():
            self._joined.set_exception(NotInRoom("left the room before it was joined"))
            self._joined.exception()  # retrieved: a join() still waiting re-raises it
        self.roster.clear()
        self.limiter.clear()
        await self.mixer.stop()
        self.warnings = []
        self.video_codec = None
        self._stats_collector.latest = {}
        self._set_local_talking(False)
        if self._state != RoomState.IDLE:
            self._set_state(RoomState.IDLE, "left")
        await self._mic_use.sync()

    async def close(self) -> None:
        if self._closed:
            return
        await self.leave()
        self._closed = True
        await self._mic_use.close()
        for device in (self.mic, self.speaker):
            if device is not None:
                try:
                    await device.stop()
                except Exception as exc:
                    log.warning("stopping %r: %s", device, exc)

    async def _run(self) -> None:
        attempt = 0
        self._set_state(RoomState.JOINING, "join")
        while True:
            entered_at = None
            try:
                entered_at, reason = await self._attempt()
            except asyncio.CancelledError:
                raise
            except PERMANENT_ERRORS as exc:
                log.error("room: %s", exc)
                self._emit("room-error", {"code": exc.code, "message": str(exc)})
                self._set_state(RoomState.ERROR, str(exc))
                if self._joined is not None and not self._joined.done():
                    self._joined.set_exception(exc)
                    self._joined.exception()  # retrieved here; join() re-raises it
                return
            except _Kicked as exc:
                self._emit("kicked", {"reason": str(exc)})
                self.roster.clear()
                await self.mixer.stop()
                self._set_state(RoomState.IDLE, str(exc))
                if self._joined is not None and not self._joined.done():
                    self._joined.set_exception(RoomError(str(exc), code="KICKED"))
                    self._joined.exception()
                return
            except Exception as exc:  # transient: reconnect
                reason = str(exc) or type(exc).__name__
                if not isinstance(exc, RoomError | OSError | TimeoutError):
                    log.exception("room: unexpected failure")
            if entered_at is not None and time.monotonic() - entered_at > 5.0:
                attempt = 0  # a good stay starts the backoff over
            delay = reconnect_delay(attempt)
            attempt += 1
            log.warning("room: rejoining in %.2f s (attempt %d): %s", delay, attempt, reason)
            self._emit("reconnecting", {"attempt": attempt, "delay": round(delay, 3),
                                        "reason": reason})
            self._set_state(RoomState.RECONNECTING, reason)
            await asyncio.sleep(delay)

    async def _attempt(self) -> tuple[float | None, str]:
        """One stay in the room: returns (time entered, why it ended)."""
        self.attempts += 1
        s = self.settings
        t0 = time.monotonic()
        conn = JanusConnection(s.url, api_secret=s.api_secret, token=s.token)
        ctx = RoomContext(conn, s, self._controls, self.roster, self.mixer, self._emit,
                          self._member_id, self._new_mic_track, self._new_video_track,
                          self._remote_video, self._remote_audio, self._set_local_talking,
                          self._moderated)
        backend: Backend = (VideoRoomBackend(ctx) if s.backend == "videoroom"
                            else AudioBridgeBackend(ctx))
        tasks: list[asyncio.Task[None]] = []
        entered_at = None

        def open_messages(member_id: str) -> None:
            # in parallel with the media setup: it needs only our member id
            tasks.append(asyncio.create_task(self._open_textroom(conn, member_id),
                                             name="room:textroom"))

        ctx.on_joined = open_messages
        ctx.on_video_codec = self._video_codec_chosen
        ctx.wants_video = self._wants_video
        try:
            await conn.open()
            self._conn = conn
            self._ctx, self._backend = ctx, backend
            await backend.enter()
            if tasks:
                await tasks[0]
            if not self._speaker_started and self.speaker is not None:
                self._speaker_started = True
                try:
                    await self.speaker.start()
                except Exception as exc:  # the room goes on; the driver reports the device
                    log.error("speaker failed to start, the room is not played: %s", exc)
                    self.mixer.sink = None
            self.mixer.start()
            tasks.append(asyncio.create_task(self.limiter.run(self._send_now),
                                             name="room:messages"))
            tasks.append(asyncio.create_task(self._stats_loop(), name="room:stats"))
            entered_at = time.monotonic()
            self.last_join_ms = round((entered_at - t0) * 1000, 1)
            self.join_count += 1
            self._set_state(RoomState.IN_ROOM, "joined")
            self._emit("entered", {"room": s.room, "member_id": backend.local_id,
                                   "join_ms": self.last_join_ms})
            if self._joined is not None and not self._joined.done():
                self._joined.set_result(None)
            if self._controls.hand_raised:
                self._queue_custom(CMD_HAND, {"raised": True}, "high")
            # These futures belong to this attempt: wait on them, never cancel them.
            done, _ = await asyncio.wait((conn.closed, ctx.failed, ctx.kicked),
                                         return_when=asyncio.FIRST_COMPLETED)
            if not ctx.kicked.done():
                # A kick also hangs up our media; its own event may come a moment later.
                await asyncio.wait((ctx.kicked,), timeout=0.3)
            if ctx.kicked.done():
                raise _Kicked(ctx.kicked.result())
            reason = next(iter(done)).result()
            return entered_at, reason
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._ctx = self._backend = None
            self._conn = None
            textroom, self._textroom = self._textroom, None
            try:
                if textroom is not None:
                    await textroom.close()
                await backend.exit()
            except Exception as exc:
                log.warning("room: cleanup: %s", exc)
            for track in self._video:
                track.stop()
            self._video.clear()
            await conn.close()

    async def _open_textroom(self, conn: JanusConnection, local_id: str) -> None:
        s = self.settings
        textroom = TextRoom(conn, s.room, local_id, s.display, s.pin,
                            on_message=self._on_text, on_presence=self._on_presence)
        try:
            participants = await textroom.open()
        except (RoomError, TimeoutError, OSError) as exc:
            log.warning("room messages unavailable: %s", exc)
            await textroom.close()
            return
        except asyncio.CancelledError:
            await textroom.close()
            raise
        self._textroom = textroom
        for p in participants:
            self._on_presence(str(p.get("username")), str(p.get("display", "")), True)

    # -- callbacks from the backend -------------------------------------------------------

    def _new_mic_track(self) -> MediaStreamTrack:
        return MicTrack(self.mic, self._mic_gate, self.settings.opus, mix=self.send_mix)

    def _mic_gate(self) -> tuple[bool, bool, int]:
        c = self._controls
        return self._mic_use.open, c.mic_enabled and not c.deaf, c.mic_volume

    def _new_video_track(self) -> MediaStreamTrack | None:
        if self.video_track_factory is None:
            return None
        track = SwitchableVideoTrack(self.video_track_factory,
                                     enabled=self._controls.video_enabled)
        self._video.append(track)
        return track

    def _remote_audio(self, member_id: str, track: MediaStreamTrack) -> None:
        self.mixer.add_track(member_id, track)
        self.mixer.set_muted(member_id, self._locally_muted(member_id))

    def _video_codec_chosen(self, codec: str | None, room_codecs: list[str] | None) -> None:
        self.video_codec = codec
        if codec is not None:
            log.info("room: sending %s video", codec)
            self.warnings = [w for w in self.warnings if w["code"] != VIDEO_CODEC_UNSUPPORTED]
            return
        warning = unsupported_warning(room_codecs or [])
        if warning in self.warnings:
            return  # said already (this stay, or the one before a reconnect)
        self.warnings = [w for w in self.warnings if w["code"] != VIDEO_CODEC_UNSUPPORTED]
        self.warnings.append(warning)
        log.warning("room: %s", warning["message"])
        self._emit("room-warning", dict(warning))

    def _wants_video(self) -> bool:
        """Subscribe to remote video? ``receive_video``, where "auto" means: while
        something on the box consumes it."""
        receive = self.settings.receive_video
        if receive == "auto":
            return self._on_remote_video is not None
        return bool(receive)

    def set_remote_video_consumer(self, consumer: Callable[[str, Any], None] | None) -> None:
        """Who takes remote video frames (None: nobody). With ``receive_video = "auto"``
        the subscriptions follow at once."""
        self._on_remote_video = consumer
        update = getattr(self._backend, "video_demand_changed", None)
        if update is not None:
            update()

    def _remote_video(self, member_id: str, frame: Any) -> None:
        if self._on_remote_video is not None:
            self._on_remote_video(member_id, frame)

    def _set_local_talking(self, talking: bool) -> None:
        if self.local_talk_detected:
            return
        if talking != self._local_talking:
            self._local_talking = talking
            self._emit("talking", {"id": "local", "talking": talking})

    def _moderated(self, kind: str, muted: bool) -> None:
        log.warning("room: a moderator %s our %s", "muted" if muted else "unmuted", kind)
        self._emit("moderated", {"kind": kind, "muted": muted})

    def _on_presence(self, username: str, display: str, present: bool) -> None:
        """TextRoom presence: it also shows listeners a plugin may not announce."""
        if username == self.roster.local_id:
            return
        if present and username not in self.roster:
            self.roster.upsert(username, display=display, role="listener")
        elif not present:
            member = self.roster.get(username)
            if member is not None and member.role == "listener" and not member.has_audio:
                self.roster.remove(username)

    def _on_text(self, sender: str, text: str, to: str | None) -> None:
        member = self.roster.get(sender)
        display = member.display if member else sender
        custom = parse_custom(text)
        if custom is None:
            self._emit("message", {"from": sender, "display": display, "text": text, "to": to})
            return
        cmd, payload = custom
        if cmd == CMD_HAND and isinstance(payload, dict):
            raised = bool(payload.get("raised"))
            if member is not None:
                self.roster.upsert(sender, hand_raised=raised)
            self._emit("hand", {"id": sender, "raised": raised})
        elif cmd == CMD_MODERATED and isinstance(payload, dict):
            if str(payload.get("id")) == self.roster.local_id:
                self._moderated(str(payload.get("kind", "audio")), bool(payload.get("muted")))
        self._emit("custom-message", {"from": sender, "display": display, "cmd": cmd,
                                      "payload": payload})

    # -- messages -------------------------------------------------------------------------

    async def _send_now(self, item: Outgoing) -> None:
        text, to = item
        if self._textroom is None:
            log.warning("room messages unavailable: dropped a message")
            return
        await self._textroom.send(text, to)

    def _require_room(self) -> None:
        if self._state not in (RoomState.IN_ROOM, RoomState.RECONNECTING):
            raise NotInRoom("not in a room")

    async def send_text(self, text: str, to: str | None = None) -> None:
        self._require_room()
        self.limiter.put(text, "high", to=to)

    async def send_custom(self, cmd: str, payload: Any, priority: Priority = "high") -> None:
        self._require_room()
        self._queue_custom(cmd, payload, priority)

    def _queue_custom(self, cmd: str, payload: Any, priority: Priority) -> None:
        self.limiter.put(encode_custom(cmd, payload), priority, key=cmd)

    # -- controls -------------------------------------------------------------------------

    def _changed(self) -> None:
        self._emit("controls", self._controls.to_dict())

    async def set_mic(self, enabled: bool) -> None:
        self._controls.mic_enabled = enabled
        await self._update_mic()
        self._changed()

    async def _update_mic(self) -> None:
        if self._backend is not None:
            try:
                await self._backend.update_mic()
            except RoomError as exc:
                log.warning("telling the server about the mic: %s", exc)

    async def set_mic_volume(self, percent: int) -> None:
        self._controls.mic_volume = _percent(percent)
        self._changed()

    def _apply_speaker(self) -> None:
        c = self._controls
        self.mixer.muted = not c.speaker_enabled or c.deaf
        if self.speaker is not None:
            self.speaker.set_volume(c.speaker_volume)

    async def set_speaker(self, enabled: bool) -> None:
        self._controls.speaker_enabled = enabled
        self._apply_speaker()
        self._changed()

    async def set_speaker_volume(self, percent: int) -> None:
        self._controls.speaker_volume = _percent(percent)
        self._apply_speaker()
        self._changed()

    async def set_video(self, enabled: bool) -> None:
        self._controls.video_enabled = enabled
        for track in self._video:
            track.switch(enabled)
        self._changed()

    async def set_deaf(self, deaf: bool) -> None:
        self._controls.deaf = deaf
        self._apply_speaker()
        await self._update_mic()
        await self._mic_use.sync()
        self._changed()

    def _locally_muted(self, member_id: str) -> bool:
        return self._controls.mute_all or member_id in self._controls.muted_members

    async def mute_member(self, member_id: str, muted: bool) -> None:
        if muted:
            self._controls.muted_members.add(member_id)
        else:
            self._controls.muted_members.discard(member_id)
        self.mixer.set_muted(member_id, self._locally_muted(member_id))
        if member_id in self.roster:
            self.roster.upsert(member_id, locally_muted=muted)
        self._changed()

    async def mute_all(self, muted: bool) -> None:
        self._controls.mute_all = muted
        for key in self.mixer.keys():
            self.mixer.set_muted(key, self._locally_muted(key))
        self._changed()

    def _backend_or_raise(self) -> Backend:
        if self._backend is None or self._state != RoomState.IN_ROOM:
            raise NotInRoom("not in a room")
        return self._backend

    async def moderate(self, member_id: str, muted: bool) -> None:
        await self._backend_or_raise().moderate(member_id, muted)
        self._queue_custom(CMD_MODERATED, {"id": member_id, "kind": "audio", "muted": muted},
                           "high")

    async def kick(self, member_id: str) -> None:
        await self._backend_or_raise().kick(member_id)

    async def raise_hand(self, raised: bool) -> None:
        self._controls.hand_raised = raised
        if self._state in (RoomState.IN_ROOM, RoomState.RECONNECTING):
            self._queue_custom(CMD_HAND, {"raised": raised}, "high")
        self._emit("hand", {"id": "local", "raised": raised})
        self._changed()

    async def set_role(self, role: Role) -> None:
        if role not in ("publisher", "listener"):
            raise RoomError(f"role must be publisher or listener, got {role!r}",
                            code="BAD_ARGUMENT")
        old = self._controls.role
        self._controls.role = role
        if self._backend is not None and old != role:
            try:
                await self._backend.set_role(role)
            except RoomError:
                self._controls.role = old
                raise
            if role == "listener":
                self.video_codec = None  # nothing published any more
        await self._mic_use.sync()
        self._changed()

    # -- stats ----------------------------------------------------------------------------

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            backend = self._backend
            if backend is None:
                continue
            try:
                extra = {"messages": self.limiter.stats(), "join_ms": self.last_join_ms,
                         "rejoins": max(0, self.join_count - 1)}
                stats = await self._stats_collector.collect(
                    backend.peer_connections(), backend.member_receivers(), self.mixer, extra)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room: stats failed")
                continue
            self._emit("stats", stats)


def _percent(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise RoomError(f"volume must be an integer 0-100, got {value!r}", code="BAD_ARGUMENT")
    return value

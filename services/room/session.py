"""JanusRoomSession: the :class:`~services.room.api.RoomSession` on a Janus server.

One task (``room:session``) keeps the box in the room: connect, join through the
configured plugin, open the message channel, then wait until something breaks (socket
drop, ICE/DTLS failure, server hangup or restart) and rejoin after a backoff with full
jitter (first retry within 300 ms, never more than 10 s). Errors a retry cannot fix
(wrong PIN, unknown room, not authorized) are reported once and the session stops in
``error``. Controls live on the session, so they survive every rejoin; the session is
built from :mod:`session_messages`, :mod:`session_controls` and :mod:`session_media`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from drivers.audio.base import MicSource, SpeakerSink
from drivers.base import Emit, null_emit
from drivers.common.malloc import Reclaimer, trim_later
from services.room.api import (
    PERMANENT_ERRORS,
    Controls,
    Member,
    NotInRoom,
    RoomError,
    RoomState,
)
from services.room.context import Backend, RoomContext, RoomSettings
from services.room.extension import RoomExtension
from services.room.janus.transport import JanusConnection
from services.room.lazy_media import import_room_media
from services.room.messages import CMD_HAND
from services.room.micuse import RoomMicUse
from services.room.mixer import RemoteAudioMixer
from services.room.ratelimit import MessageLimiter
from services.room.roster import Roster
from services.room.session_media import SessionMedia
from services.room.speaker_use import HOLD_S, RoomSpeakerUse
from services.room.stats import StatsCollector

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from services.room.janus.textroom import TextRoom
    from services.room.tracks import SwitchableVideoTrack

log = logging.getLogger(__name__)
#: The C heap is trimmed this long after joining (the join's garbage is freed by then;
#: None: not trimmed).
TRIM_AFTER_JOIN_S: float | None = 10.0

class _Kicked(Exception):
    pass


def reconnect_delay(attempt: int, base: float = 0.3, cap: float = 10.0) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); attempt 0 is <= ``base``."""
    return random.uniform(0.0, min(cap, base * (2 ** min(attempt, 16))))


class JanusRoomSession(SessionMedia):
    def __init__(self, settings: RoomSettings, *, mic: MicSource | None = None,
                 speaker: SpeakerSink | None = None,
                 video_track_factory: Callable[[], MediaStreamTrack] | None = None,
                 emit: Emit = null_emit, controls: Controls | None = None,
                 on_remote_video: Callable[[str, Any], None] | None = None,
                 mixer: RemoteAudioMixer | None = None,
                 speaker_hold_s: float = HOLD_S) -> None:
        self.settings = settings
        self.mic = mic
        self.speaker = speaker
        self.video_track_factory = video_track_factory
        self._emit = emit
        self._controls = controls or Controls(role=settings.role)
        if not settings.send_video:
            self._controls.video_enabled = False
        self._on_remote_video = on_remote_video
        self._video_shown: Callable[[str], bool] | None = None
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
        self._closed = False
        self._reclaimer = Reclaimer()  # what a stay leaves behind, once it is over
        self._conn: JanusConnection | None = None
        self._mic_use = RoomMicUse(mic, self._room_uses_mic, emit)
        self._speaker_use = RoomSpeakerUse(speaker, self._room_plays, emit, speaker_hold_s)
        self.mixer.on_sources = self._voices_changed
        self.roster.on_change = self._voices_changed
        self.join_count = 0
        #: The codec the room chose for our camera (None: not publishing video).
        self.video_codec: str | None = None
        #: Conditions worth knowing that do not stop the room (``room-warning`` events).
        self.warnings: list[dict[str, Any]] = []
        self.last_join_ms: float | None = None
        self.attempts = 0
        self.built_from: object | None = None  # the config it was made from (wiring)
        #: Room features on the message channel (metadata, requests to speak, moderation).
        self.extension: RoomExtension | None = None
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

    @property
    def room_number(self) -> int | str:  # in a stay: as the server takes it (room_ids)
        return self._backend.room if self._backend is not None else self.settings.room

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
        self._speaker_use.changed()

    # -- the mic: open only while the room uses it -----------------------------------------

    def _room_uses_mic(self) -> bool:
        c = self._controls
        return (not self._closed and self._state == RoomState.IN_ROOM and not c.deaf
                and c.role == "publisher" and self.audio_codec is not None)  # it is sent

    def _room_plays(self) -> bool:
        """In a room (or on the way in, or back): the speaker may play."""
        return not self._closed and self._state in (RoomState.JOINING, RoomState.IN_ROOM,
                                                    RoomState.RECONNECTING)

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

    async def set_room(self, room: int | str) -> None:
        """Use another room number from the next join (leaves the current room)."""
        if str(room) != str(self.settings.room):  # 1234 and "1234" are one room
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
        if self.extension is not None:
            self.extension.left()
        await self.mixer.stop()
        await self._speaker_use.stop()  # out of the room, nothing plays silence
        self.warnings = []
        self.video_codec = self.audio_codec = None
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
        self._reclaimer.cancel()
        await self._mic_use.close()
        await self._speaker_use.close()
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
        await asyncio.to_thread(import_room_media)  # aiortc and PyAV, on the first join
        from services.room.janus.audiobridge import AudioBridgeBackend
        from services.room.janus.videoroom import VideoRoomBackend

        conn = JanusConnection(s.url, api_secret=s.api_secret, token=s.token, ca_file=s.ca_file)
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
        ctx.on_video_codec, ctx.on_audio_codec = self._video_codec_chosen, self._audio_codec_chosen
        ctx.on_warning = self._room_warning
        ctx.wants_video = self._wants_video
        ctx.shows_video = self._shows_video
        ctx.wants_member_video = self._wants_member_video
        try:
            await conn.open()
            self._conn = conn
            self._ctx, self._backend = ctx, backend
            await backend.enter()
            if tasks:
                await tasks[0]
            self.mixer.start()  # the speaker plays it while there is something to hear
            tasks.append(asyncio.create_task(self.limiter.run(self._send_now),
                                             name="room:messages"))
            tasks.append(asyncio.create_task(self._stats_loop(), name="room:stats"))
            if TRIM_AFTER_JOIN_S is not None:
                tasks.append(asyncio.create_task(
                    trim_later(TRIM_AFTER_JOIN_S, "after joining"), name="room:trim"))
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
            self._mic_told = None
            self._tell_mic()
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
            self._reclaimer.soon("after a stay in the room")  # a second after this close
            await conn.close()

    async def _open_textroom(self, conn: JanusConnection, local_id: str) -> None:
        from services.room.janus.textroom import TextRoom

        s = self.settings
        textroom = TextRoom(conn, self.room_number, local_id, s.display, s.pin,
                            on_message=self._on_text, on_presence=self._on_presence,
                            on_history=self._on_history)
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
        if self.extension is not None:
            self.extension.opened()

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
                    backend.peer_connections(), backend.member_receivers(), self.mixer, extra,
                    speaker_state=self._speaker_use.state)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room: stats failed")
                continue
            self._emit("stats", stats)

"""The room session's media callbacks: the tracks the backend sends (mic, camera), the
remote audio and video it receives, the video codec the room chose, local talking.

Part of :class:`services.room.session.JanusRoomSession`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.audio.base import MicSource
from services.room.context import RoomSettings
from services.room.mixer import MIX_KEY
from services.room.negotiation import (
    AUDIO_NARROWBAND,
    VIDEO_CODEC_UNSUPPORTED,
    narrowband_warning,
    unsupported_warning,
)
from services.room.session_controls import SessionControls
from services.room.speaker_use import RoomSpeakerUse

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger("services.room.session")


class SessionMedia(SessionControls):
    settings: RoomSettings
    mic: MicSource | None
    video_track_factory: Callable[[], MediaStreamTrack] | None
    warnings: list[dict[str, Any]]
    _on_remote_video: Callable[[str, Any], None] | None
    _video_shown: Callable[[str], bool] | None
    _local_talking: bool
    _speaker_use: RoomSpeakerUse
    #: what is mixed into every frame the mic track sends (playbacks into the room)
    send_mix: Callable[[bytes], bytes] | None = None
    #: True when the box tells its own talking (input sensitivity), not the server
    local_talk_detected: bool = False
    #: The codec the mic is sent in (``opus``; G.711 or G.722 where the room takes no
    #: Opus), None while nothing is published
    audio_codec: str | None = None

    @property
    def speaker_state(self) -> str:
        """The room's speaker: ``idle`` (not in a room), ``resting`` (nothing to hear),
        ``playing`` or ``failed`` (services/room/speaker_use.py)."""
        return self._speaker_use.state

    def local_playout(self, playing: bool) -> None:
        """A local playback on the speaker plays (or no longer does): the speaker runs
        for it even when no member's voice is in the mix."""
        self._speaker_use.want("playbacks", playing)

    def _new_mic_track(self) -> MediaStreamTrack:
        from services.room.tracks import MicTrack  # loaded with the room (lazy_media.py)

        return MicTrack(self.mic, self._mic_gate, self.settings.opus, mix=self.send_mix)

    def _mic_gate(self) -> tuple[bool, bool, int]:
        c = self._controls
        return self._mic_use.open, c.mic_enabled and not c.deaf, c.mic_volume

    def _new_video_track(self) -> MediaStreamTrack | None:
        if self.video_track_factory is None:
            return None
        from services.room.tracks import SwitchableVideoTrack

        track = SwitchableVideoTrack(self.video_track_factory,
                                     enabled=self._controls.video_enabled)
        self._video.append(track)
        return track

    def _remote_audio(self, member_id: str, track: MediaStreamTrack) -> None:
        # a voice room's mix is everyone at once: its level is nobody's talking
        levels = None if member_id == MIX_KEY else self.roster.levels.heard
        self.mixer.add_track(member_id, track, levels)
        self.mixer.set_muted(member_id, self._locally_muted(member_id))

    def _video_codec_chosen(self, codec: str | None, room_codecs: list[str] | None) -> None:
        self.video_codec = codec
        if codec is not None:
            log.info("room: sending %s video", codec)
        self._room_warning(VIDEO_CODEC_UNSUPPORTED,
                           None if codec is not None else unsupported_warning(room_codecs or []))

    def _audio_codec_chosen(self, codec: str | None) -> None:
        """The room takes our mic in ``codec`` (None: it takes none of it, or we wait
        for a place: the mic is then not sent, and closed)."""
        self.audio_codec = codec
        self._room_warning(AUDIO_NARROWBAND,
                           None if codec in ("opus", None) else narrowband_warning(codec))
        self._mic_use.changed()

    def _room_warning(self, code: str, warning: dict[str, Any] | None) -> None:
        """Hold ``warning`` under ``code`` (a ``room-warning`` event when it is new: not
        said already this stay, or in the one before a reconnect), or drop the one held."""
        if warning in self.warnings:
            return
        self.warnings = [w for w in self.warnings if w["code"] != code]
        if warning is None:
            return
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

    def _shows_video(self) -> bool:
        """Does something take remote video frames now? (If not, none is decoded.)"""
        return self._on_remote_video is not None

    def set_remote_video_consumer(self, consumer: Callable[[str, Any], None] | None) -> None:
        """Who takes remote video frames (None: nobody). With ``receive_video = "auto"``
        the subscriptions follow at once."""
        self._on_remote_video = consumer
        update = getattr(self._backend, "video_demand_changed", None)
        if update is not None:
            update()

    def set_video_filter(self, shown: Callable[[str], bool] | None) -> None:
        """Whose video the consumer shows now (None: everyone's); the others' streams are
        paused at the server, so they are neither sent nor decoded. Call again (with the
        same function) when its answers change."""
        self._video_shown = shown
        update = getattr(self._backend, "video_demand_changed", None)
        if update is not None:
            update()

    def _wants_member_video(self, member_id: str) -> bool:
        return self._video_shown is None or self._video_shown(member_id)

    def _remote_video(self, member_id: str, frame: Any) -> None:
        if self._on_remote_video is not None:
            self._on_remote_video(member_id, frame)

    def _set_local_talking(self, talking: bool) -> None:
        if self.local_talk_detected:
            return
        if talking != self._local_talking:
            self._local_talking = talking
            self._emit("talking", {"id": "local", "talking": talking})

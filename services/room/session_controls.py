"""The room session's controls: mic, speaker, video, deafness, local and moderator
mutes, the raised hand and the role. They live on the session, so they survive every
rejoin.

Part of :class:`services.room.session.JanusRoomSession`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from drivers.audio.base import SpeakerSink
from services.room.api import Controls, NotInRoom, Role, RoomError, RoomState
from services.room.context import Backend
from services.room.messages import CMD_HAND, CMD_MODERATED
from services.room.micuse import RoomMicUse
from services.room.mixer import MIX_KEY, RemoteAudioMixer
from services.room.session_messages import SessionMessages
from services.room.speaker_use import RoomSpeakerUse

if TYPE_CHECKING:
    from services.room.tracks import SwitchableVideoTrack

log = logging.getLogger("services.room.session")


class SessionControls(SessionMessages):
    _controls: Controls
    _backend: Backend | None
    _video: list[SwitchableVideoTrack]
    _mic_use: RoomMicUse
    _speaker_use: RoomSpeakerUse
    mixer: RemoteAudioMixer
    speaker: SpeakerSink | None
    video_codec: str | None
    audio_codec: str | None

    def _changed(self) -> None:
        self._emit("controls", self._controls.to_dict())

    async def set_mic(self, enabled: bool) -> None:
        self._controls.mic_enabled = enabled
        await self._update_mic()
        self._tell_mic()
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

    def _apply_speaker(self, retry: bool = False) -> None:
        """Apply the speaker controls; ``retry``: a person switched the speaker on, so a
        device that failed to open is tried again."""
        c = self._controls
        self.mixer.muted = not c.speaker_enabled or c.deaf
        if self.speaker is not None:
            self.speaker.set_volume(c.speaker_volume)
        # off or deaf: the speaker rests (after its hold)
        self._voices_changed(arrived=retry and c.speaker_enabled and not c.deaf)

    async def set_speaker(self, enabled: bool) -> None:
        self._controls.speaker_enabled = enabled
        self._apply_speaker(retry=enabled)
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
        self._apply_speaker(retry=not deaf)
        await self._update_mic()
        await self._mic_use.sync()
        self._tell_mic()
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
        self._voices_changed()
        self._changed()

    async def mute_all(self, muted: bool) -> None:
        self._controls.mute_all = muted
        for key in self.mixer.keys():
            self.mixer.set_muted(key, self._locally_muted(key))
        self._voices_changed()
        self._changed()

    def _voices_changed(self, count: int = 0, arrived: bool = False) -> None:
        """The mixer's voices, the roster or the speaker's controls changed: the speaker
        plays while at least one voice can be heard (services/room/speaker_use.py). The
        mixer's ``count`` of sources is not used: :meth:`_heard_voices` counts again."""
        self._speaker_use.voices(self._heard_voices(), arrived)

    def _heard_voices(self) -> int:
        """How many of the mixer's voices can be heard now: none while the speaker is off
        or the box is deaf; a voice muted here, or at its source (a moderator, or an
        AudioBridge participant who muted), is not heard. The AudioBridge room's mix is
        heard while any other participant is unmuted (alone, it carries silence)."""
        c = self._controls
        if not c.speaker_enabled or c.deaf:
            return 0
        heard = 0
        for key in self.mixer.keys():
            if self._locally_muted(key):
                continue
            if key == MIX_KEY:
                heard += any(not m.audio_muted for m in self.roster.members())
                continue
            member = self.roster.get(key)
            heard += member is None or not member.audio_muted
        return heard

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
                self.video_codec = self.audio_codec = None  # nothing published any more
        await self._mic_use.sync()
        self._changed()


def _percent(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise RoomError(f"volume must be an integer 0-100, got {value!r}", code="BAD_ARGUMENT")
    return value

"""The room client: joins a room on the room server and carries the appliance's media.

``create_session`` builds the :class:`~services.room.api.RoomSession` its
:class:`~services.room.settings.SessionSettings` describe; ``create_local_sfu`` the
supervised local Janus when ``room.server = "local"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.base import Emit, null_emit

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from drivers.audio.base import MicSource, SpeakerSink
    from drivers.camera.settings import CameraSettings
    from services.playback.manager import PlaybackManager
    from services.room.janus.jcfg import JanusSettings
    from services.room.local_sfu import LocalJanus
    from services.room.session import JanusRoomSession
    from services.room.settings import SessionSettings

log = logging.getLogger(__name__)


def create_session(settings: SessionSettings, state_dir: Path, *, sim: bool,
                   emit: Emit = null_emit, mic: MicSource | None = None,
                   speaker: SpeakerSink | None = None,
                   video_track_factory: Callable[[], MediaStreamTrack] | None = None,
                   on_remote_video: Callable[[str, Any], None] | None = None,
                   playbacks: PlaybackManager | None = None,
                   ) -> JanusRoomSession:
    """The room session ``settings`` describe; devices not given are opened from them.
    With ``playbacks``, its room playbacks are mixed into what the mic sends (after the
    echo canceller) and its speaker playbacks into the speaker."""
    from services.room.api import Controls
    from services.room.session import JanusRoomSession

    room = settings.room
    if mic is None:
        from drivers.audio import open_mic

        mic = open_mic(settings.audio, state_dir, sim=sim, emit=emit)
    if speaker is None:
        from drivers.audio import open_speaker

        speaker = open_speaker(settings.audio, state_dir, sim=sim, emit=emit)
    if playbacks is not None:
        from services.playback.speaker import PlaybackSpeaker

        speaker = PlaybackSpeaker(speaker, playbacks.speaker_mix)
    if not sim and settings.audio.backend != "sim":
        mic = _processed(settings, mic, speaker, emit)
    if video_track_factory is None and room.backend == "videoroom" and room.send_video:
        video_track_factory = _camera_tracks(settings.camera, sim, emit)
    controls = Controls(mic_enabled=settings.mic_enabled, mic_volume=settings.mic_volume,
                        speaker_enabled=settings.speaker_enabled,
                        speaker_volume=settings.speaker_volume,
                        video_enabled=room.send_video, role=room.role)
    from functools import partial

    from services.room.jitter import JitterBuffer
    from services.room.mixer import RemoteAudioMixer

    buffers = partial(JitterBuffer, min_ms=settings.jitter_min_ms,
                      max_ms=max(settings.jitter_min_ms, settings.jitter_max_ms))
    session = JanusRoomSession(room, mic=mic, speaker=speaker,
                               video_track_factory=video_track_factory, emit=emit,
                               controls=controls, on_remote_video=on_remote_video,
                               mixer=RemoteAudioMixer(speaker, buffers),
                               speaker_hold_s=settings.speaker_hold_s)
    if playbacks is not None:
        session.send_mix = playbacks.room_mix
        playbacks.on_speaker = session.local_playout  # the speaker plays for them too
    return session


def _processed(settings: SessionSettings, mic: MicSource, speaker: SpeakerSink,
               emit: Emit) -> MicSource:
    """The mic through echo cancellation, noise suppression and AGC as ``settings`` ask
    (on real hardware; the sim mic's test tones go out untouched)."""
    if not (settings.aec or settings.noise_suppression or settings.agc):
        return mic
    try:
        from services.audio import AudioProcessor, ProcessedMic

        listen = getattr(speaker, "add_playout_listener", None)
        processor = AudioProcessor.from_config(settings, has_speaker=listen is not None)
    except (ImportError, OSError) as exc:  # SpeexDspMissing is an ImportError
        log.warning("mic processing unavailable, sending the raw mic: %s", exc)
        return mic
    if listen is not None:
        listen(processor.feed_playout)  # the echo canceller's reference
    return ProcessedMic(mic, processor, emit=emit)


def _camera_tracks(camera: CameraSettings, sim: bool,
                   emit: Emit) -> Callable[[], MediaStreamTrack]:
    """A plain track over a fresh camera each time video is switched on (aiortc encodes)."""
    def factory() -> MediaStreamTrack:
        from drivers.camera import open_camera
        from services.room.tracks import CameraTrack

        return CameraTrack(open_camera(camera, sim=sim, emit=emit))

    return factory


def create_local_sfu(settings: JanusSettings, state_dir: Path, *,
                     emit: Emit = null_emit) -> LocalJanus:
    """The local Janus ``settings`` describe, its files under ``state_dir/sfu``."""
    from services.room.local_sfu import LocalJanus

    return LocalJanus(settings, state_dir / "sfu", emit=emit)

"""The room client: joins a room on the room server and carries the appliance's media.

``create_session`` builds the :class:`~services.room.api.RoomSession` the config asks for;
``create_local_sfu`` the supervised local Janus when ``room.server = "local"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.base import Emit, null_emit

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from device.config import Config
    from drivers.audio.base import MicSource, SpeakerSink
    from services.playback.manager import PlaybackManager
    from services.room.local_sfu import LocalJanus
    from services.room.session import JanusRoomSession

log = logging.getLogger(__name__)


def server_url(config: Config) -> str:
    room = config.room
    if room.server != "local":
        return room.server
    host = room.local_listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"ws://{host}:{room.local_port}"


def create_session(config: Config, state_dir: Path, *, sim: bool, emit: Emit = null_emit,
                   mic: MicSource | None = None, speaker: SpeakerSink | None = None,
                   video_track_factory: Callable[[], MediaStreamTrack] | None = None,
                   on_remote_video: Callable[[str, Any], None] | None = None,
                   playbacks: PlaybackManager | None = None,
                   ) -> JanusRoomSession:
    """The room session for ``config``; devices not given are opened from the config.
    With ``playbacks``, its room playbacks are mixed into what the mic sends (after the
    echo canceller) and its speaker playbacks into the speaker."""
    from services.room.api import Controls
    from services.room.context import RoomSettings
    from services.room.opus_send import OpusSendSettings
    from services.room.session import JanusRoomSession

    room = config.room
    settings = RoomSettings(
        url=server_url(config), backend=room.backend, room=room.room,
        display=room.effective_display_name, pin=room.pin, secret=room.secret,
        api_secret=room.api_secret, token=room.token, role=room.role,
        receive_video=config.video.receive if room.backend == "videoroom" else False,
        send_video=config.video.enabled,
        opus=OpusSendSettings(frame_ms=config.audio.frame_ms,
                              bitrate_kbps=config.audio.opus_bitrate_kbps,
                              dtx=config.audio.opus_dtx, fec=config.audio.opus_fec),
    )
    if mic is None:
        from drivers.audio import open_mic

        mic = open_mic(config, state_dir, sim=sim, emit=emit)
    if speaker is None:
        from drivers.audio import open_speaker

        speaker = open_speaker(config, state_dir, sim=sim, emit=emit)
    if playbacks is not None:
        from services.playback.speaker import PlaybackSpeaker

        speaker = PlaybackSpeaker(speaker, playbacks.speaker_mix)
    if not sim and config.audio.backend != "sim":
        mic = _processed(config, mic, speaker, emit)
    if video_track_factory is None and room.backend == "videoroom" and config.video.enabled:
        video_track_factory = _camera_tracks(config, sim, emit)
    audio = config.audio
    controls = Controls(mic_enabled=audio.mic_enabled, mic_volume=audio.mic_volume,
                        speaker_enabled=audio.speaker_enabled,
                        speaker_volume=audio.speaker_volume,
                        video_enabled=config.video.enabled, role=room.role)
    from functools import partial

    from services.room.jitter import JitterBuffer
    from services.room.mixer import RemoteAudioMixer

    buffers = partial(JitterBuffer, min_ms=audio.jitter_min_ms,
                      max_ms=max(audio.jitter_min_ms, audio.jitter_max_ms))
    session = JanusRoomSession(settings, mic=mic, speaker=speaker,
                               video_track_factory=video_track_factory, emit=emit,
                               controls=controls, on_remote_video=on_remote_video,
                               mixer=RemoteAudioMixer(speaker, buffers))
    session.built_from = config
    if playbacks is not None:
        session.send_mix = playbacks.room_mix
    return session


def _processed(config: Config, mic: MicSource, speaker: SpeakerSink, emit: Emit) -> MicSource:
    """The mic through echo cancellation, noise suppression and AGC as ``[audio]`` asks
    (on real hardware; the sim mic's test tones go out untouched)."""
    audio = config.audio
    if not (audio.aec or audio.noise_suppression or audio.agc):
        return mic
    try:
        from services.audio import AudioProcessor, ProcessedMic

        listen = getattr(speaker, "add_playout_listener", None)
        processor = AudioProcessor.from_config(audio, has_speaker=listen is not None)
    except (ImportError, OSError) as exc:  # SpeexDspMissing is an ImportError
        log.warning("mic processing unavailable, sending the raw mic: %s", exc)
        return mic
    if listen is not None:
        listen(processor.feed_playout)  # the echo canceller's reference
    return ProcessedMic(mic, processor, emit=emit)


def _camera_tracks(config: Config, sim: bool, emit: Emit) -> Callable[[], MediaStreamTrack]:
    """A plain track over a fresh camera each time video is switched on (aiortc encodes)."""
    def factory() -> MediaStreamTrack:
        from drivers.camera import open_camera
        from services.room.tracks import CameraTrack

        return CameraTrack(open_camera(config, sim=sim, emit=emit))

    return factory


def create_local_sfu(config: Config, state_dir: Path, *, emit: Emit = null_emit) -> LocalJanus:
    from services.room.janus.jcfg import JanusSettings, RoomSpec
    from services.room.local_sfu import LocalJanus

    room = config.room
    settings = JanusSettings(
        listen_ip=room.local_listen, port=room.local_port, interface=room.local_interface,
        rooms=(RoomSpec(room.room, description=room.effective_display_name, pin=room.pin,
                        secret=room.secret, history=room.history,
                        # voice-room links join plain-RTP participants (docs/links.md)
                        allow_rtp_participants=bool(config.link)
                        and room.backend == "audiobridge"),),
        api_secret=room.api_secret,
    )
    return LocalJanus(settings, state_dir / "sfu", emit=emit)

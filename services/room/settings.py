"""What :func:`services.room.create_session` reads: :class:`SessionSettings`.

The appliance builds it from ``[room]``, ``[audio]``, ``[video]`` and ``[sim]`` of its
config (``device/settings.py``); the room client reads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.audio.settings import AudioDeviceSettings
    from drivers.camera.settings import CameraSettings
    from services.room.context import RoomSettings


@dataclass(frozen=True)
class SessionSettings:
    """One room session: the room, the devices it opens itself, the mic processing, the
    controls it starts with and the jitter buffers of the remote voices."""

    #: the room and how to join it (its ``send_video`` also turns the camera on)
    room: RoomSettings
    #: the mic and speaker, opened when the session is not handed them
    audio: AudioDeviceSettings
    #: the camera, opened for the video when the session is not handed a track factory
    camera: CameraSettings
    #: echo cancellation, noise suppression and gain control on the mic (real mics only)
    aec: bool
    noise_suppression: bool
    agc: bool
    #: the people's controls at start (0-100 for the volumes)
    mic_enabled: bool
    mic_volume: int
    speaker_enabled: bool
    speaker_volume: int
    #: each remote voice's jitter buffer: least and most delay, ms
    jitter_min_ms: float
    jitter_max_ms: float
    #: seconds the speaker plays on after the last voice that can be heard went
    speaker_hold_s: float = 3.0

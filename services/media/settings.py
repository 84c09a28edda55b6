"""What :class:`~services.media.service.MediaService` reads: :class:`MediaSettings`.

The appliance builds it from ``[record]``, ``[stream]``, ``[video]``, ``[audio]``,
``[sim]`` and the room number of its config (``device/settings.py``); the service asks
for it again whenever a camera or mic opens and a recording or stream starts, so saved
changes apply then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.audio.settings import AudioDeviceSettings
    from drivers.camera.settings import CameraSettings


@dataclass(frozen=True)
class MediaSettings:
    """Recording, RTMP streaming and the shared encoders."""

    #: the camera and the mic the shared encoders read
    camera: CameraSettings
    audio: AudioDeviceSettings
    #: where recordings go (relative: in the state dir), their container and file length
    record_directory: str
    record_format: str
    segment_seconds: float
    #: oldest recordings go past this total; recording stops below this much free disk
    max_total_mb: int
    min_free_mb: int
    #: the video encoders' target bitrate, longest keyframe distance and H.264 encoder
    bitrate_kbps: int
    gop_seconds: float
    encoder: str
    #: the AAC encoder's bitrate; the H.264 bitrate while streaming
    audio_bitrate_kbps: int
    stream_bitrate_kbps: int
    #: where ``stream start`` without a URL goes (None: nowhere set)
    rtmp_url: str | None
    #: what an rtmps:// server's certificate is checked against (None: the system's CAs)
    stream_ca_file: str | None
    #: what recordings' file names start with
    label: str

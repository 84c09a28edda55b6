"""What opens the microphone and the speaker: :class:`AudioDeviceSettings`.

The appliance builds it from ``[audio]`` and ``[sim]`` of its config
(``device/settings.py``); the drivers read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AudioDeviceSettings:
    """The mic and speaker to open, and how."""

    #: ``auto`` (sim with ``--sim``, else ALSA), ``alsa`` or ``sim``
    backend: Literal["auto", "alsa", "sim"]
    #: ALSA capture and playback devices (``default``, ``plughw:1,0``, ...)
    mic_device: str
    speaker_device: str
    #: ALSA period and buffer, in frames
    period_size: int
    buffer_size: int
    #: gain and volume at open, 0-100
    mic_volume: int
    speaker_volume: int
    #: the sim mic's source (``tone:<hz>``, ``silence`` or a WAV path) and clock drift
    sim_mic: str
    sim_mic_drift_ppm: float
    #: the WAV file the sim speaker writes (relative: in the state dir), its rotation
    #: size and clock drift
    sim_speaker: str
    sim_speaker_max_mb: int
    sim_speaker_drift_ppm: float

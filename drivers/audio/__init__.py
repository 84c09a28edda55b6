"""Microphone and speaker: the interface, the ALSA backend and the sim backend.

:func:`open_mic` and :func:`open_speaker` open what an :class:`AudioDeviceSettings` says,
on the backend it names (``"auto"`` means sim with ``--sim``, else ALSA). The returned
object is not started: ``await mic.start()`` opens the device and raises
:class:`~drivers.errors.DeviceNotFound` or :class:`~drivers.errors.DeviceBusy` with the
detail an operator needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from drivers.audio.base import (
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    MicSource,
    PcmFrame,
    SpeakerSink,
)
from drivers.audio.settings import AudioDeviceSettings
from drivers.base import Emit, null_emit

__all__ = [
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioDeviceSettings",
    "MicSource",
    "PcmFrame",
    "SpeakerSink",
    "audio_devices",
    "choose_backend",
    "open_mic",
    "open_speaker",
]

log = logging.getLogger(__name__)


def choose_backend(settings: AudioDeviceSettings, *, sim: bool) -> tuple[str, str]:
    """The audio backend the appliance would use, and why: ``(backend, reason)``."""
    wanted = settings.backend
    if wanted != "auto":
        return wanted, f'audio.backend = "{wanted}"'
    return ("sim", "auto with --sim") if sim else ("alsa", "auto without --sim")


def open_mic(settings: AudioDeviceSettings, state_dir: Path, *, sim: bool,
             emit: Emit = null_emit) -> MicSource:
    """The microphone ``settings`` describe (not started)."""
    backend, reason = choose_backend(settings, sim=sim)
    if backend == "sim":
        from drivers.audio.sim import SimMic

        log.info("mic: sim %s (%s)", settings.sim_mic, reason)
        return SimMic(settings.sim_mic, state_dir=state_dir, gain=settings.mic_volume,
                      drift_ppm=settings.sim_mic_drift_ppm)
    from drivers.audio.alsa import AlsaMic

    log.info("mic: ALSA %s (%s)", settings.mic_device, reason)
    return AlsaMic(settings.mic_device, period_size=settings.period_size,
                   buffer_size=settings.buffer_size, gain=settings.mic_volume, emit=emit)


def open_speaker(settings: AudioDeviceSettings, state_dir: Path, *, sim: bool,
                 emit: Emit = null_emit) -> SpeakerSink:
    """The speaker ``settings`` describe (not started)."""
    backend, reason = choose_backend(settings, sim=sim)
    if backend == "sim":
        from drivers.audio.sim import SimSpeaker

        path = Path(settings.sim_speaker).expanduser()
        path = path if path.is_absolute() else state_dir / path
        log.info("speaker: sim, writing %s (%s)", path, reason)
        return SimSpeaker(path, max_bytes=settings.sim_speaker_max_mb * 1024 * 1024,
                          volume=settings.speaker_volume, drift_ppm=settings.sim_speaker_drift_ppm)
    from drivers.audio.alsa import AlsaSpeaker

    log.info("speaker: ALSA %s (%s)", settings.speaker_device, reason)
    return AlsaSpeaker(settings.speaker_device, period_size=settings.period_size,
                       buffer_size=settings.buffer_size, volume=settings.speaker_volume, emit=emit)


def audio_devices() -> dict[str, list[dict[str, Any]]]:
    """``{"microphones": [...], "speakers": [...]}``; see :mod:`drivers.audio.inventory`."""
    from drivers.audio.inventory import audio_devices as _audio_devices

    return _audio_devices()

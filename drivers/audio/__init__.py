"""Microphone and speaker: the interface, the ALSA backend and the sim backend.

:func:`open_mic` and :func:`open_speaker` pick the backend from ``audio.backend``
(``"auto"`` means sim with ``--sim``, else ALSA). The returned object is not started:
``await mic.start()`` opens the device and raises :class:`~drivers.errors.DeviceNotFound`
or :class:`~drivers.errors.DeviceBusy` with the detail an operator needs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.audio.base import (
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    MicSource,
    PcmFrame,
    SpeakerSink,
)
from drivers.base import Emit, null_emit

if TYPE_CHECKING:
    from device.config import Config

__all__ = [
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "MicSource",
    "PcmFrame",
    "SpeakerSink",
    "audio_devices",
    "choose_backend",
    "open_mic",
    "open_speaker",
]

log = logging.getLogger(__name__)


def choose_backend(config: Config, *, sim: bool) -> tuple[str, str]:
    """The audio backend the appliance would use, and why: ``(backend, reason)``."""
    wanted = config.audio.backend
    if wanted != "auto":
        return wanted, f'audio.backend = "{wanted}"'
    return ("sim", "auto with --sim") if sim else ("alsa", "auto without --sim")


def open_mic(config: Config, state_dir: Path, *, sim: bool, emit: Emit = null_emit) -> MicSource:
    """The microphone described by ``config`` (not started)."""
    backend, reason = choose_backend(config, sim=sim)
    audio = config.audio
    if backend == "sim":
        from drivers.audio.sim import SimMic

        log.info("mic: sim %s (%s)", config.sim.mic, reason)
        return SimMic(config.sim.mic, state_dir=state_dir, gain=audio.mic_volume,
                      drift_ppm=config.sim.mic_drift_ppm)
    from drivers.audio.alsa import AlsaMic

    log.info("mic: ALSA %s (%s)", audio.mic_device, reason)
    return AlsaMic(audio.mic_device, period_size=audio.period_size,
                   buffer_size=audio.buffer_size, gain=audio.mic_volume, emit=emit)


def open_speaker(config: Config, state_dir: Path, *, sim: bool,
                 emit: Emit = null_emit) -> SpeakerSink:
    """The speaker described by ``config`` (not started)."""
    backend, reason = choose_backend(config, sim=sim)
    audio = config.audio
    if backend == "sim":
        from drivers.audio.sim import SimSpeaker

        path = Path(config.sim.speaker).expanduser()
        path = path if path.is_absolute() else state_dir / path
        log.info("speaker: sim, writing %s (%s)", path, reason)
        return SimSpeaker(path, max_bytes=config.sim.speaker_max_mb * 1024 * 1024,
                          volume=audio.speaker_volume, drift_ppm=config.sim.speaker_drift_ppm)
    from drivers.audio.alsa import AlsaSpeaker

    log.info("speaker: ALSA %s (%s)", audio.speaker_device, reason)
    return AlsaSpeaker(audio.speaker_device, period_size=audio.period_size,
                       buffer_size=audio.buffer_size, volume=audio.speaker_volume, emit=emit)


def audio_devices() -> dict[str, list[dict[str, Any]]]:
    """``{"microphones": [...], "speakers": [...]}``; see :mod:`drivers.audio.inventory`."""
    from drivers.audio.inventory import audio_devices as _audio_devices

    return _audio_devices()

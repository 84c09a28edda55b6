"""Speakerphone processing of the microphone: echo cancellation, noise suppression,
automatic gain, voice activity (libspeexdsp through a small ctypes binding)."""

from services.audio.mic import ProcessedMic
from services.audio.processing import (
    AudioFormatError,
    AudioProcessor,
    ProcessingOptions,
    level_dbfs,
)
from services.audio.reference import PlayoutReference
from services.audio.speexdsp import SpeexDspError, SpeexDspMissing

__all__ = [
    "AudioFormatError",
    "AudioProcessor",
    "PlayoutReference",
    "ProcessedMic",
    "ProcessingOptions",
    "SpeexDspError",
    "SpeexDspMissing",
    "level_dbfs",
]

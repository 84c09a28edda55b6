"""What the room sends of one mic frame: the session's gate, the volume, the playbacks.

Used per frame by both ways the mic's audio leaves: the mic track on the event loop
(:class:`~services.room.tracks.MicTrack`) and the audio send thread
(:mod:`services.room.audio_send`). The functions here are plain and synchronous; the gate
and the mix they call read only attributes and snapshots, so they may run in any thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from drivers.audio.base import SAMPLE_RATE, PcmFrame
from services.room.opus_send import level_of_dbfs

#: What the mic path asks of the session on every frame:
#: (is the mic open for the room?, send its sound?, volume percent). A listener does not
#: use the mic.
MicGate = Callable[[], tuple[bool, bool, int]]
#: Adds the room's playbacks to a frame about to be sent (returns it unchanged when none)
Mix = Callable[[bytes], bytes]

SILENT = 127  # RFC 6464 level of digital silence


class SendFrame(NamedTuple):
    """Mono samples to encode, their RFC 6464 level (None: to be measured from the
    samples) and when the mic frame was complete (None: paced silence)."""

    samples: bytes
    level: int | None
    due: float | None


def apply_volume(samples: bytes, percent: int) -> bytes:
    if percent >= 100:
        return samples
    if percent <= 0:
        return bytes(len(samples))
    pcm = np.frombuffer(samples, dtype=np.int16).astype(np.int32)
    return ((pcm * percent) // 100).astype(np.int16).tobytes()


def level_sent(pcm: PcmFrame, volume: int) -> int | None:
    """RFC 6464 level of what is sent of ``pcm`` at ``volume`` percent, from the level the
    mic path measured (None when it did not, or when the mono mix changes it)."""
    if pcm.level_dbfs is None or pcm.channels != 1:
        return None
    if volume <= 0:
        return SILENT
    gain_db = 20.0 * math.log10(volume / 100) if volume < 100 else 0.0
    return level_of_dbfs(pcm.level_dbfs + gain_db)


def mic_frame(pcm: PcmFrame, gate: MicGate, mix: Mix | None) -> SendFrame:
    """What is sent of the mic frame ``pcm``. The gate is read now, after the frame
    arrived: a mute pressed while it was being captured already silences it."""
    _, send, volume = gate()
    channels = max(1, pcm.channels)
    due = pcm.captured_at + len(pcm.samples) / (2 * channels * SAMPLE_RATE)
    samples = pcm.samples if send else bytes(len(pcm.samples) // channels)
    level: int | None = SILENT
    if send:
        level = level_sent(pcm, volume)
        if pcm.channels != 1:  # keep what we send mono
            stereo = np.frombuffer(samples, dtype=np.int16).reshape(-1, pcm.channels)
            samples = stereo.mean(axis=1).astype(np.int16).tobytes()
        if volume < 100:
            samples = apply_volume(samples, volume)
    return _mixed(SendFrame(samples, level, due), mix)


def silent_frame(silence: bytes, gate: MicGate, mix: Mix | None) -> SendFrame:
    """Paced silence (no mic, or the mic not open for the room), playbacks mixed in."""
    return _mixed(SendFrame(silence, SILENT, None), mix)


def _mixed(frame: SendFrame, mix: Mix | None) -> SendFrame:
    if mix is None:
        return frame
    mixed = mix(frame.samples)
    if mixed is frame.samples:
        return frame
    return SendFrame(mixed, None, frame.due)  # a playback went in: measure what is sent

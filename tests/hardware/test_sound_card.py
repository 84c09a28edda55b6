"""The board's sound card through pyalsaaudio: capture, playback and the mixer.

Needs a card with capture and playback (a USB speakerphone or a sound HAT), named in
``EDGEROOM_TEST_ALSA``, e.g. ``EDGEROOM_TEST_ALSA=plughw:CARD=Device,DEV=0``.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct

import pytest

pytestmark = pytest.mark.hardware

try:
    import alsaaudio
except ImportError:
    pytest.skip("pyalsaaudio does not import here", allow_module_level=True)

DEVICE = os.environ.get("EDGEROOM_TEST_ALSA", "")
if not DEVICE:
    pytest.skip("set EDGEROOM_TEST_ALSA=DEVICE (a card with capture and playback)",
                allow_module_level=True)

from drivers.audio.alsa import AlsaMic, AlsaSpeaker  # noqa: E402
from drivers.audio.alsa_mixer import find_mixer  # noqa: E402
from drivers.audio.base import SAMPLE_RATE, PcmFrame  # noqa: E402


async def test_the_mic_delivers_20_ms_frames_at_48_khz() -> None:
    mic = AlsaMic(DEVICE)
    await asyncio.wait_for(mic.start(), 10)
    try:
        frames = [await asyncio.wait_for(mic.read(), 2) for _ in range(100)]  # 2 s
        stats = mic.stats
    finally:
        await asyncio.wait_for(mic.stop(), 10)
    assert {(f.sample_rate, f.channels, f.sample_count) for f in frames} == \
        {(SAMPLE_RATE, 1, SAMPLE_RATE // 50)}
    indices = [f.index for f in frames]
    assert indices == sorted(indices)
    assert stats.get("overruns", 0) == 0, stats


async def test_the_speaker_plays_a_tone_without_underruns() -> None:
    speaker = AlsaSpeaker(DEVICE)
    await asyncio.wait_for(speaker.start(), 10)
    n = SAMPLE_RATE // 50
    try:
        for index in range(100):  # 2 s of 440 Hz at -12 dBFS, in real time
            samples = [int(8000 * math.sin(2 * math.pi * 440 * (index * n + i) / SAMPLE_RATE))
                       for i in range(n)]
            speaker.write(PcmFrame(struct.pack(f"<{n}h", *samples), 0.0, index))
            await asyncio.sleep(0.02)
        level = speaker.level_dbfs
        stats = speaker.stats
    finally:
        await asyncio.wait_for(speaker.stop(), 10)
    assert level > -30, level
    assert stats.get("underruns", 0) <= 2, stats


def test_the_mixer_has_volume_controls_that_move() -> None:
    for capture in (False, True):
        mixer = find_mixer(DEVICE, capture)
        if mixer is None:
            continue  # software gain for this direction
        try:
            kind = alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK
            control = mixer._control
            before = control.getvolume(pcmtype=kind)
            mixer.set(30)
            assert all(abs(v - 30) <= 5 for v in control.getvolume(pcmtype=kind))
            mixer.set(before[0])
        finally:
            mixer.close()
    assert find_mixer(DEVICE, False) or find_mixer(DEVICE, True), \
        f"{DEVICE}: no playback or capture volume control"

"""The room's speaker resting and starting again on a real ALSA device.

An :class:`~drivers.audio.alsa.AlsaSpeaker` on a device with its own clock (PulseAudio's
null sink through alsa-lib), driven by the room's speaker use and mixer: a voice opens
the device and starts its thread, the voice gone closes both after the hold, the next
voice opens them again. The echo canceller listens to the playout the whole time and
takes the rest as a gap in its reference: no error, nothing logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from drivers.audio.alsa import AlsaSpeaker
from services.audio import AudioProcessor, ProcessingOptions
from services.room.mixer import RemoteAudioMixer
from services.room.speaker_use import RoomSpeakerUse

if TYPE_CHECKING:
    from tests.drivers.conftest import PulsePcms

pytestmark = pytest.mark.timeout(90)

T = 10.0
HOLD = 0.5


def alsa_speaker_threads() -> int:
    return sum(t.name.startswith("alsa-speaker") for t in threading.enumerate())


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, what
        await asyncio.sleep(0.01)


async def test_the_alsa_speaker_rests_and_plays_again_with_the_echo_reference_following(
        pulse_pcms: PulsePcms, caplog: pytest.LogCaptureFixture) -> None:
    from aiortc.mediastreams import AudioStreamTrack

    spk = AlsaSpeaker(pulse_pcms.playback)
    processor = AudioProcessor(ProcessingOptions(aec=True, noise_suppression=False, agc=False))
    spk.add_playout_listener(processor.feed_playout)
    mixer = RemoteAudioMixer(spk)
    use = RoomSpeakerUse(spk, lambda: True, hold_s=HOLD)
    mixer.on_sources = use.voices
    mixer.start()
    try:
        with caplog.at_level(logging.WARNING):
            use.changed()
            await until(lambda: use.state == "resting", "resting")
            assert alsa_speaker_threads() == 0 and spk.params is None

            for _ in range(2):  # a voice, gone, and another one: the device each time
                mixer.add_track("m1", AudioStreamTrack())
                await until(lambda: use.playing and alsa_speaker_threads() == 1, "playing")
                start = spk.stats["frames"]
                await until(lambda s=start: spk.stats["frames"] >= s + 40, "the device to play")
                assert spk.params is not None  # open, with what the device agreed to
                await asyncio.wait_for(mixer.remove("m1"), T)
                await until(lambda: use.state == "resting", "resting after the voice")
                await until(lambda: alsa_speaker_threads() == 0, "the thread to end")
                frames = spk.stats["frames"]
                await asyncio.sleep(0.3)
                assert spk.stats["frames"] == frames  # nothing played while resting
        assert [r.getMessage() for r in caplog.records] == []
        assert processor.bad_playout == 0
        assert processor.stats["reference_jumps"] >= 1  # the rest, as a gap
        assert spk.stats["reopens"] == 0  # stopped and opened on purpose, never lost
    finally:
        await asyncio.wait_for(mixer.stop(), T)
        await asyncio.wait_for(use.stop(), T)
        await asyncio.wait_for(spk.stop(), T)
        processor.close()

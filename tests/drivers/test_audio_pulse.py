"""The ALSA mic and speaker on a device with its own clock: PulseAudio's null sink.

Unlike the file PCMs (as fast as the CPU), this device takes and gives samples at the
real-time rate and runs dry when it is not fed (see :mod:`tests.harness.pulse`).
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from drivers.audio.alsa import AlsaMic, AlsaSpeaker
from drivers.audio.alsa_device import open_pcm
from drivers.audio.base import FRAME_SAMPLES, PcmFrame
from tests.harness.audio import dominant_hz

if TYPE_CHECKING:
    from tests.drivers.conftest import PulsePcms

pytestmark = pytest.mark.timeout(60)

T = 5.0  # seconds any single await may take before the test fails


def tone_frames(count: int, freq: float = 500.0, amplitude: float = 8000.0) -> list[bytes]:
    """A tone; at 500 Hz each 20 ms frame holds whole cycles, so frames dropped on the way
    leave it continuous."""
    t = np.arange(count * FRAME_SAMPLES) / 48000
    samples = (np.sin(2 * np.pi * freq * t) * amplitude).astype("<i2").tobytes()
    step = FRAME_SAMPLES * 2
    return [samples[i:i + step] for i in range(0, len(samples), step)]


async def feed(speaker: AlsaSpeaker, seconds: float, every_s: float = 0.010) -> None:
    """Hand tone frames to the speaker, one every ``every_s`` s (2x real time by default)."""
    frames = tone_frames(50)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        speaker.write(PcmFrame(frames[i % len(frames)], time.monotonic(), i))
        i += 1
        await asyncio.sleep(every_s)


async def started(speaker: AlsaSpeaker) -> None:
    """Wait until the device has taken its first frames."""
    deadline = time.monotonic() + 10
    while speaker.stats["frames"] < 10:
        assert time.monotonic() < deadline, f"speaker never started: {speaker.stats}"
        await asyncio.sleep(0.02)


def test_playback_blocks_at_real_time_pace(pulse_pcms: PulsePcms) -> None:
    pcm, params = open_pcm(pulse_pcms.playback, capture=False, rate=48000, channels=1,
                           period_size=960, buffer_size=3840)
    try:
        assert params.native
        frames = tone_frames(100)  # 2 s
        underruns = 0

        def write(samples: bytes) -> None:
            nonlocal underruns
            written = pcm.write(samples)
            if written == -errno.EPIPE:  # a busy machine starved it; prepared again
                underruns += 1
                written = pcm.write(samples)
            assert written == FRAME_SAMPLES

        # Fill the device buffer until a write has to wait: the stream is running.
        deadline = time.monotonic() + 10
        while True:
            before = time.monotonic()
            write(frames[0])
            if time.monotonic() - before > 0.010:
                break
            assert before < deadline, "the device never made a write wait"
        waits = []
        start = time.monotonic()
        for samples in frames:
            before = time.monotonic()
            write(samples)
            waits.append(time.monotonic() - before)
        elapsed = time.monotonic() - start
    finally:
        pcm.close()
    # Full before and after: the device took 2 s of audio in the meantime (less at most
    # the 80 ms buffer dropped by an underrun), never faster. It is slower when a busy
    # machine makes it underrun: the upper bound only says that it played.
    assert 2.0 - 0.04 - (0.08 if underruns else 0.0) <= elapsed <= 6.0, (elapsed, underruns)
    # Each 20 ms period written waits about 20 ms for the device to take one.
    assert 0.015 <= sorted(waits)[len(waits) // 2] <= 0.025, sorted(waits)


async def test_speaker_takes_frames_at_the_device_pace(pulse_pcms: PulsePcms) -> None:
    spk = AlsaSpeaker(pulse_pcms.playback, period_size=480, buffer_size=1440)
    await asyncio.wait_for(spk.start(), T)
    feeder = asyncio.create_task(feed(spk, 20.0), name="test:feed-speaker")
    try:
        await asyncio.wait_for(started(spk), 2 * T)
        t0, n0 = time.monotonic(), spk.stats["frames"]
        await asyncio.sleep(3.0)  # offered at twice real time: the device takes 50 a second
        t1, n1 = time.monotonic(), spk.stats["frames"]
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await asyncio.wait_for(spk.stop(), T)
    rate = (n1 - n0) / (t1 - t0)
    # Never faster than the device; slower only if a busy machine makes it underrun.
    assert 20.0 <= rate <= 52.0, (rate, spk.stats)
    assert spk.stats["dropped"] > 0  # the rest never reached the device


async def test_speaker_underrun_is_recovered_and_counted(pulse_pcms: PulsePcms) -> None:
    spk = AlsaSpeaker(pulse_pcms.playback, period_size=960, buffer_size=3840)
    await asyncio.wait_for(spk.start(), T)
    try:
        warm = asyncio.create_task(feed(spk, 30.0), name="test:feed-speaker")
        try:
            await asyncio.wait_for(started(spk), 2 * T)
            await asyncio.sleep(0.5)
        finally:
            warm.cancel()
            await asyncio.gather(warm, return_exceptions=True)
        before = dict(spk.stats)
        await asyncio.sleep(0.25)  # the 80 ms device buffer runs dry; the stream goes on
        await asyncio.wait_for(feed(spk, 1.0), T)
        after = dict(spk.stats)
    finally:
        await asyncio.wait_for(spk.stop(), T)
    assert after["underruns"] >= before["underruns"] + 1, (before, after)
    assert after["frames"] - before["frames"] >= 15, (before, after)  # playing again
    assert after["reopens"] == 0  # recovered in place, not treated as a lost device


async def test_capture_is_paced_and_gives_back_what_was_played(
        pulse_pcms: PulsePcms) -> None:
    spk = AlsaSpeaker(pulse_pcms.playback, period_size=480, buffer_size=1440)
    mic = AlsaMic(pulse_pcms.capture, period_size=480, buffer_size=1920, queue_frames=500)
    await asyncio.wait_for(spk.start(), T)
    await asyncio.wait_for(mic.start(), T)
    player = asyncio.create_task(feed(spk, 30.0), name="test:feed-speaker")
    try:
        await asyncio.wait_for(started(spk), 2 * T)
        await asyncio.wait_for(mic.read(), T)
        t0, n0 = time.monotonic(), mic.stats["frames"]
        await asyncio.sleep(3.0)
        t1, n1 = time.monotonic(), mic.stats["frames"]
        got = [await asyncio.wait_for(mic.read(), T) for _ in range(n1 - 1)]
    finally:
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await asyncio.wait_for(mic.stop(), T)
        await asyncio.wait_for(spk.stop(), T)
    rate = (n1 - n0) / (t1 - t0)
    assert 45.0 <= rate <= 52.0, rate  # 20 ms frames at the device's pace
    assert mic.stats["overruns"] == 0
    stamps = np.diff([f.captured_at for f in got[-100:]])
    assert abs(float(np.median(stamps)) - 0.020) < 0.002
    samples = np.frombuffer(b"".join(f.samples for f in got[-50:]), "<i2") / 32768.0
    assert abs(dominant_hz(samples) - 500.0) < 5.0

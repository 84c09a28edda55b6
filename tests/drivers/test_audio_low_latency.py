"""The ALSA defaults: 10 ms periods and a 3-period buffer, on a device with its own clock
(PulseAudio's null sink through alsa-lib) and on file PCMs.

An xrun is recovered in place and counted, and the watchdog's speaker probe, which
watches the speaker's frame counter, stays healthy through one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from device.config import AudioConfig
from device.probes import GRACE
from device.supervisor import CounterProgress, Supervisor
from drivers.audio.alsa import AlsaMic, AlsaSpeaker
from drivers.audio.base import PcmFrame
from tests.harness.pcm_delay import measure_playback_delay

if TYPE_CHECKING:
    from tests.drivers.conftest import AsoundRc, PulsePcms

pytestmark = pytest.mark.timeout(90)

T = 10.0  # seconds any single await may take before the test fails


class ToneSource:
    """A speaker source: a 500 Hz tone, ``count`` samples per pull; it can be told to
    stall once (the mix held up for longer than the device buffer lasts)."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.stall_s = 0.0
        self._phase = 0
        self._lock = threading.Lock()

    def __call__(self, count: int, play_at: float) -> PcmFrame:
        with self._lock:
            self.counts.append(count)
            stall, self.stall_s = self.stall_s, 0.0
        if stall:
            time.sleep(stall)
        t = np.arange(self._phase, self._phase + count)
        self._phase += count
        samples = (np.sin(2 * np.pi * 500 * t / 48000) * 6000).astype("<i2").tobytes()
        return PcmFrame(samples, time.monotonic())


async def _until(check: Callable[[], bool], what: str, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_the_defaults_are_10_ms_periods_and_3_periods() -> None:
    audio = AudioConfig()
    assert (audio.period_size, audio.buffer_size) == (480, 1440)
    spk, mic = AlsaSpeaker(), AlsaMic()
    assert (spk._period_size, spk._buffer_size) == (480, 1440)
    assert (mic._period_size, mic._buffer_size) == (480, 1440)


async def test_speaker_pulls_10_ms_at_the_device_pace(pulse_pcms: PulsePcms) -> None:
    source = ToneSource()
    spk = AlsaSpeaker(pulse_pcms.playback)
    await asyncio.wait_for(spk.start(), T)
    spk.set_source(source)
    try:
        await _until(lambda: spk.stats["frames"] >= 50, "the speaker to start")
        t0, n0 = time.monotonic(), spk.stats["frames"]
        await asyncio.sleep(3.0)
        t1, n1 = time.monotonic(), spk.stats["frames"]
        stats = spk.stats
    finally:
        await asyncio.wait_for(spk.stop(), T)
    assert (stats["period_frames"], stats["buffer_frames"]) == (480, 1440), stats
    assert set(source.counts) == {480}
    rate = (n1 - n0) / (t1 - t0)
    # 100 periods a second, never faster; slower only when a loaded machine starves the
    # 30 ms buffer (0-7 underruns in 5 s at load 5-11, more at load 50-90), each
    # recovered in place. 20 ms pulls would make 50 a second.
    assert 60.0 <= rate <= 102.0, (rate, stats)
    assert stats["reopens"] == 0, stats


def test_snd_pcm_delay_at_the_defaults(pulse_pcms: PulsePcms) -> None:
    figures = measure_playback_delay(pulse_pcms.playback, seconds=3.0)
    summary = figures.summary()
    print("snd_pcm_delay at 480/1440 on the paced device:", summary)
    assert (figures.period_size, figures.buffer_size) == (480, 1440), summary
    # Kept full: 30 ms in the buffer after each write, plus the plugin's own latency.
    assert 28.0 <= summary["queued_p50_ms"] <= 30.5, summary
    assert 28.0 <= summary["delay_p50_ms"] <= 45.0, summary


async def test_an_underrun_is_recovered_in_place_and_the_probe_stays_healthy(
        pulse_pcms: PulsePcms) -> None:
    source = ToneSource()
    spk = AlsaSpeaker(pulse_pcms.playback)
    supervisor = Supervisor()
    supervisor.add_probe("speaker", CounterProgress(lambda: int(spk.stats["frames"])),
                         GRACE["speaker"])
    await asyncio.wait_for(spk.start(), T)
    spk.set_source(source)
    try:
        await _until(lambda: spk.stats["frames"] >= 50, "the speaker to start")
        before = dict(spk.stats)
        source.stall_s = 0.12  # four times the 30 ms device buffer
        await _until(lambda: spk.stats["underruns"] > before["underruns"], "an underrun")
        await asyncio.sleep(1.0)
        after = dict(spk.stats)
        probes = supervisor.probes()
    finally:
        await asyncio.wait_for(spk.stop(), T)
    assert after["reopens"] == 0, after  # in place, not a lost device
    assert after["frames"] - before["frames"] >= 80, (before, after)  # playing again
    assert all(p["ok"] for p in probes), probes


async def test_file_pcms_open_at_the_defaults(asoundrc: AsoundRc, tmp_path: Path) -> None:
    raw = tmp_path / "in.raw"
    raw.write_bytes(np.full(48000, 1000, "<i2").tobytes())
    mic = AlsaMic(asoundrc.file_pcm("filemic", infile=raw), queue_frames=100)
    out = tmp_path / "out.raw"
    spk = AlsaSpeaker(asoundrc.file_pcm("filespk", out=out))
    source = ToneSource()
    await asyncio.wait_for(mic.start(), T)
    await asyncio.wait_for(spk.start(), T)
    spk.set_source(source)
    try:
        frames = [await asyncio.wait_for(mic.read(), T) for _ in range(10)]
        await _until(lambda: spk.stats["frames"] >= 10, "the speaker to play")
        mic_stats, spk_stats = mic.stats, spk.stats
    finally:
        await asyncio.wait_for(mic.stop(), T)
        await asyncio.wait_for(spk.stop(), T)
    assert (mic_stats["period_frames"], mic_stats["buffer_frames"]) == (480, 1440)
    assert (spk_stats["period_frames"], spk_stats["buffer_frames"]) == (480, 1440)
    assert all(len(f.samples) == 1920 for f in frames)  # still 20 ms frames inside
    assert set(source.counts) == {480}
    assert out.stat().st_size >= 10 * 960

"""The ALSA speaker pulling playout from a source, through real alsa-lib on a file PCM.

A ``type file`` PCM over ``null`` takes data as fast as the CPU gives it, so these
tests check what is pulled and written, not the pace (the sim speaker's pace is tested
in tests/room/test_playout.py).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drivers.audio.alsa import AlsaSpeaker
from drivers.audio.base import FRAME_SAMPLES, PcmFrame
from drivers.audio.pcm import FRAME_BYTES

if TYPE_CHECKING:
    from tests.drivers.conftest import AsoundRc

T = 5.0


async def test_speaker_pulls_one_period_at_a_time_from_its_source(
        asoundrc: AsoundRc, tmp_path: Path) -> None:
    out = tmp_path / "played.raw"
    name = asoundrc.file_pcm("pullspk", out=out)
    rng = np.random.default_rng(7)
    frames = [rng.integers(-20000, 20000, FRAME_SAMPLES, dtype=np.int16).tobytes()
              for _ in range(10)]
    asked: list[int] = []
    done = threading.Event()

    def source(count: int, play_at: float) -> PcmFrame | None:
        asked.append(count)
        if len(asked) <= len(frames):
            return PcmFrame(frames[len(asked) - 1], play_at, len(asked))
        done.set()
        if len(asked) > 1000:  # the file PCM never blocks: stop being asked
            spk.set_source(None)
        return None  # nothing to play: silence

    heard: list[bytes] = []
    spk = AlsaSpeaker(name, period_size=FRAME_SAMPLES, buffer_size=4 * FRAME_SAMPLES)
    spk.add_playout_listener(lambda f, at: heard.append(f.samples))
    spk.set_source(source)
    await asyncio.wait_for(spk.start(), T)
    try:
        await asyncio.wait_for(asyncio.to_thread(done.wait, T), T + 1)
    finally:
        await asyncio.wait_for(spk.stop(), T)
    data = out.read_bytes()
    assert set(asked) == {FRAME_SAMPLES}  # one 20 ms period each time
    # one period of silence primes the device, then the pulled frames, then silence
    assert data.startswith(bytes(FRAME_BYTES) + b"".join(frames))
    assert not data[FRAME_BYTES * 11:].strip(b"\0")
    assert heard == frames  # the listeners hear what was played, not the silence
    assert spk.stats["frames"] == len(frames)


async def test_a_failing_source_plays_silence_and_playout_goes_on(
        asoundrc: AsoundRc, tmp_path: Path) -> None:
    out = tmp_path / "played.raw"
    spk = AlsaSpeaker(asoundrc.file_pcm("badspk", out=out))
    calls = 0
    done = threading.Event()

    def source(count: int, play_at: float) -> PcmFrame | None:
        nonlocal calls
        calls += 1
        if calls >= 3:
            done.set()
            spk.set_source(None)
        raise RuntimeError("broken mixer")

    spk.set_source(source)
    await asyncio.wait_for(spk.start(), T)
    try:
        await asyncio.wait_for(asyncio.to_thread(done.wait, T), T + 1)
    finally:
        await asyncio.wait_for(spk.stop(), T)
    assert calls >= 3 and not out.read_bytes().strip(b"\0")

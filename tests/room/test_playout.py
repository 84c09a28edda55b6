"""Playout pulled by the sound card: the sim speaker's own clock drives the mixer, and a
blocked event loop leaves no gap in what it plays."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.audio.base import FRAME_SAMPLES, PcmFrame
from drivers.audio.sim import SimSpeaker
from services.audio.opus import OpusEncoder
from services.room.jitter import JitterBuffer
from services.room.mixer import RemoteAudioMixer, _Source
from tests.harness.audio import HEADER, RATE


def tone(n: int, start: int) -> np.ndarray:
    t = (np.arange(n) + start) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)


@pytest.mark.parametrize("ppm", [0.0, 50_000.0, -50_000.0])
async def test_sim_speaker_pulls_at_its_own_pace(tmp_path: Path, ppm: float) -> None:
    pulls: list[tuple[int, float]] = []
    late: list[float] = []

    def source(count: int, play_at: float) -> PcmFrame | None:
        pulls.append((count, play_at))
        late.append(time.monotonic() - play_at)
        return PcmFrame(bytes(2 * count), play_at)

    spk = SimSpeaker(tmp_path / "s.wav", drift_ppm=ppm)
    spk.set_source(source)
    t0 = time.monotonic()
    await asyncio.wait_for(spk.start(), 5)
    await asyncio.sleep(1.0)
    await asyncio.wait_for(spk.stop(), 5)
    elapsed = time.monotonic() - t0
    period = 0.02 / (1 + ppm * 1e-6)
    assert all(count == FRAME_SAMPLES for count, _ in pulls)
    # one pull per period of its own clock, never early (and it catches up when its
    # thread was late: start and stop take a while on a loaded machine)
    steps = np.diff([at for _, at in pulls])
    assert np.allclose(steps, period, atol=1e-9)
    assert min(late) >= -0.001
    assert elapsed / period - 0.3 / period <= len(pulls) <= elapsed / period + 1
    assert spk.stats["frames"] == len(pulls)


async def test_a_blocked_loop_leaves_no_gap_in_the_speaker(tmp_path: Path) -> None:
    """Packets keep coming (the sender is not this loop); the loop blocks for 150 ms in
    a call that releases the GIL, then runs pure Python for 30 ms: the speaker thread
    pulls the mix all the while, and its WAV has the tone in every 20 ms window."""
    buf = JitterBuffer(min_ms=100.0)  # a loaded test machine's threads wake late
    with OpusEncoder(bitrate=32000) as enc:
        packets = [enc.encode(tone(FRAME_SAMPLES, i * FRAME_SAMPLES)) for i in range(150)]
    stop = threading.Event()

    def network() -> None:  # 20 ms packets in real time, on their own clock
        start = time.monotonic()
        for i, payload in enumerate(packets):
            if stop.wait(max(0.0, start + i * 0.02 - time.monotonic())):
                return
            buf.put(i, i * FRAME_SAMPLES, payload)

    path = tmp_path / "speaker.wav"
    spk = SimSpeaker(path)
    mixer = RemoteAudioMixer(spk)
    mixer._sources = (_Source("far", buf),)
    sender = threading.Thread(target=network, name="test-network")
    await asyncio.wait_for(spk.start(), 5)
    mixer.start()
    sender.start()
    try:
        await asyncio.sleep(1.0)
        time.sleep(0.15)  # noqa: ASYNC251  (the point: the loop is blocked, the GIL free)
        until = time.monotonic() + 0.03
        while time.monotonic() < until:  # pure Python on the loop
            pass
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.to_thread(sender.join, 5), 6)
        await asyncio.wait_for(mixer.stop(), 5)
        await asyncio.wait_for(spk.stop(), 5)
    x = np.frombuffer(path.read_bytes()[HEADER:], dtype=np.int16).astype(np.float64)
    n = len(x) // FRAME_SAMPLES
    rms = np.sqrt((x[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 12000 / np.sqrt(2) / 2)  # within 6 dB of the tone
    assert len(loud) > 100
    first, last = loud[0], loud[-1]
    gaps = sorted(set(range(first, last)) - set(loud))
    assert last - first + 1 == len(loud), f"quiet 20 ms windows: {gaps}"
    assert buf.stats()["concealed_pct"] == 0.0 and buf.underruns == 0


async def test_sim_mic_clock_drifts_as_configured() -> None:
    from drivers.audio.sim import SimMic

    fast = SimMic("tone:440", drift_ppm=50_000.0)
    await asyncio.wait_for(fast.start(), 5)
    stamps = [(await asyncio.wait_for(fast.read(), 5)).captured_at for _ in range(5)]
    await fast.stop()
    assert np.allclose(np.diff(stamps), 0.02 / 1.05, atol=1e-9)  # 5 % fast: shorter frames
    with pytest.raises(ValueError, match="drift_ppm"):
        SimMic("tone:440", drift_ppm=1e6)
    with pytest.raises(ValueError, match="drift_ppm"):
        SimSpeaker(Path("x.wav"), drift_ppm=-1e6)

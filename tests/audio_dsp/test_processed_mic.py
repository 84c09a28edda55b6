"""ProcessedMic: a MicSource whose frames went through the processor."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import wave
from pathlib import Path

import numpy as np

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, MicSource, PcmFrame
from drivers.audio.sim import SimMic, SimSpeaker
from services.audio import AudioProcessor, ProcessedMic, ProcessingOptions

from .signals import FRAME_S, T0, Signal, fit, to_pcm


class ArrayMic:
    """A MicSource that hands out a prepared signal frame by frame, then EOF."""

    def __init__(self, signal: Signal) -> None:
        pcm = to_pcm(signal)
        self.frames = [PcmFrame(pcm[k:k + FRAME_SAMPLES].tobytes(), T0 + i * FRAME_S, i)
                       for i, k in enumerate(range(0, len(pcm) - FRAME_SAMPLES + 1,
                                                   FRAME_SAMPLES))]
        self.started = self.stopped = False
        self.gain = 100

    async def start(self) -> None:
        self.started = True

    async def read(self) -> PcmFrame:
        if self.stopped or not self.frames:
            raise EOFError("mic stopped")
        await asyncio.sleep(0)
        return self.frames.pop(0)

    def set_gain(self, percent: int) -> None:
        self.gain = percent

    @property
    def stats(self) -> dict[str, int]:
        return {"frames": 0, "dropped": 0, "overruns": 0, "reopens": 0}

    async def stop(self) -> None:
        self.stopped = True


async def test_processed_mic_is_a_mic_source(near_speech: Signal) -> None:
    signal = np.concatenate([np.zeros(SAMPLE_RATE), fit(near_speech, 3 * SAMPLE_RATE),
                             np.zeros(SAMPLE_RATE)])
    events: list[tuple[str, dict[str, object]]] = []
    raw = ArrayMic(signal)
    mic = ProcessedMic(raw, AudioProcessor(ProcessingOptions(aec=False)),
                       emit=lambda name, data: events.append((name, data)))
    assert isinstance(mic, MicSource)
    await asyncio.wait_for(mic.start(), 5)
    mic.set_gain(40)
    assert raw.gain == 40
    out = []
    try:
        while True:
            out.append(await asyncio.wait_for(mic.read(), 5))
    except EOFError:
        pass
    assert len(out) == 250
    assert [f.index for f in out] == list(range(250))
    assert out[10].captured_at == T0 + 10 * FRAME_S
    assert mic.stats["processed"] == 250
    talking = [d["talking"] for name, d in events if name == "local-talking"]
    assert talking[:1] == [True] and talking[-1] is False
    await asyncio.wait_for(mic.stop(), 5)
    mic.close()
    mic.close()
    assert raw.stopped


async def test_bad_frames_are_sent_unprocessed() -> None:
    raw = ArrayMic(np.zeros(FRAME_SAMPLES * 3))
    raw.frames[1] = PcmFrame(b"\0" * 640, T0, 1, sample_rate=16000)
    mic = ProcessedMic(raw, AudioProcessor())
    await asyncio.wait_for(mic.start(), 5)
    frames = [await asyncio.wait_for(mic.read(), 5) for _ in range(3)]
    assert frames[1].sample_rate == 16000
    assert mic.stats["unprocessed"] == 1 and mic.stats["processed"] == 2
    await asyncio.wait_for(mic.stop(), 5)
    mic.close()


async def test_processor_is_usable_after_restart() -> None:
    raw = ArrayMic(np.zeros(FRAME_SAMPLES * 4))
    mic = ProcessedMic(raw, AudioProcessor())
    await asyncio.wait_for(mic.start(), 5)
    await asyncio.wait_for(mic.read(), 5)
    await asyncio.wait_for(mic.stop(), 5)
    raw.stopped = False
    await asyncio.wait_for(mic.start(), 5)
    await asyncio.wait_for(mic.read(), 5)
    await asyncio.wait_for(mic.stop(), 5)
    mic.close()


async def test_with_the_sim_mic_and_speaker(tmp_path: Path, near_speech: Signal,
                                           far_speech: Signal) -> None:
    """The real sim drivers, paced in real time for about a second: the wiring works."""
    mic_wav = tmp_path / "near.wav"
    with wave.open(str(mic_wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(to_pcm(fit(near_speech, 3 * SAMPLE_RATE)).tobytes())
    processor = AudioProcessor()
    speaker = SimSpeaker(tmp_path / "speaker.wav")
    speaker.add_playout_listener(processor.feed_playout)
    events: list[dict[str, object]] = []
    mic = ProcessedMic(SimMic(str(mic_wav), state_dir=tmp_path), processor,
                       emit=lambda name, data: events.append(data))
    far = to_pcm(far_speech)

    async def play() -> None:
        for k in range(10_000):
            chunk = far[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes()
            speaker.write(PcmFrame(chunk, time.monotonic(), k))
            await asyncio.sleep(FRAME_S)

    await asyncio.wait_for(speaker.start(), 5)
    await asyncio.wait_for(mic.start(), 5)
    player = asyncio.create_task(play(), name="test-player")
    try:
        frames = [await asyncio.wait_for(mic.read(), 5) for _ in range(60)]
    finally:
        player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(player, 5)
        await asyncio.wait_for(mic.stop(), 5)
        await asyncio.wait_for(speaker.stop(), 5)
        mic.close()
    assert all(len(f.samples) == 2 * FRAME_SAMPLES for f in frames)
    assert all(b.captured_at > a.captured_at for a, b in itertools.pairwise(frames))
    assert processor.stats["reference_frames"] > 10
    assert mic.stats["processed"] == 60
    assert {"talking": True} in [{"talking": e["talking"]} for e in events]

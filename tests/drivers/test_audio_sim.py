"""The sim mic and speaker: tone, WAV sources, real-time pacing, the speaker's WAV file."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from device.config import Config, from_dict
from device.settings import audio_devices
from drivers.audio import choose_backend, open_mic, open_speaker
from drivers.audio.alsa import AlsaMic, AlsaSpeaker
from drivers.audio.base import FRAME_SAMPLES, MicSource, PcmFrame, SpeakerSink
from drivers.audio.pcm import FRAME_BYTES, percent_to_gain, saturate_s16
from drivers.audio.sim import SimMic, SimSpeaker
from drivers.errors import DeviceError, DeviceNotFound
from tests.harness.polling import frames_at_least, wait_until

T = 5.0
POLL_S = 0.005  # the simulated speaker paces itself; no need to poll faster


def peak_hz(samples: bytes, rate: int = 48000) -> float:
    x = np.frombuffer(samples, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: Path) -> tuple[wave._wave_params, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getparams(), w.readframes(w.getnframes())


@pytest.mark.parametrize("hz", [440, 1000, 3150.5])
async def test_sim_tone_has_the_configured_frequency(hz: float) -> None:
    async with SimMic(f"tone:{hz}", queue_frames=50) as mic:
        await asyncio.sleep(0.2)  # ten frames are ready at once
        frames = [await asyncio.wait_for(mic.read(), T) for _ in range(10)]
    data = b"".join(f.samples for f in frames)
    assert abs(peak_hz(data) - hz) < 5  # 0.2 s: 5 Hz bins
    # Phase runs on across frames: the joined signal is one clean sine.
    n = np.arange(10 * FRAME_SAMPLES)
    ideal = np.sin(2 * np.pi * hz * n / 48000) * 32767 * 0.5
    got = np.frombuffer(data, dtype="<i2").astype(np.float64)
    assert np.max(np.abs(got - ideal)) <= 1.0
    assert all(f.sample_rate == 48000 and f.channels == 1 and len(f.samples) == FRAME_BYTES
               for f in frames)


async def test_sim_mic_is_paced_to_real_time_without_drift() -> None:
    # A queue as long as the run: a consumer that a busy machine wakes late still gets
    # every frame, so what is checked is the pacing, not the machine's load.
    mic = SimMic("silence", queue_frames=100)
    await mic.start()
    t0 = time.monotonic()
    frames = [await asyncio.wait_for(mic.read(), T) for _ in range(100)]  # 2 s
    elapsed = time.monotonic() - t0
    await mic.stop()
    assert 1.7 < elapsed < 2.6
    start = frames[0].captured_at
    # Frame n covers start + n*20 ms exactly: stamps come from the schedule, not from
    # when the consumer happened to wake up.
    assert all(abs(f.captured_at - (start + f.index * 0.02)) < 1e-9 for f in frames)
    assert [f.index for f in frames] == list(range(100))
    # ... and none is handed out before it has been fully "captured".
    assert frames[-1].captured_at + 0.02 <= time.monotonic()
    with pytest.raises(EOFError):
        await asyncio.wait_for(mic.read(), T)


async def test_sim_mic_slow_consumer_loses_the_oldest_frames() -> None:
    async with SimMic("tone:440", queue_frames=4) as mic:
        first = await asyncio.wait_for(mic.read(), T)
        await asyncio.sleep(0.3)
        late = await asyncio.wait_for(mic.read(), T)
        now = time.monotonic()
    assert mic.stats["dropped"] >= 8
    assert late.index == first.index + 1 + mic.stats["dropped"]
    assert now - late.captured_at <= 5 * 0.02 + 0.05  # at most queue_frames behind


async def test_sim_mic_loops_a_wav_of_any_rate_and_channels(tmp_path: Path) -> None:
    n = 22050 // 5  # 0.2 s at 22.05 kHz, stereo, 500 Hz
    tone = saturate_s16(np.sin(2 * np.pi * 500 * np.arange(n) / 22050) * 12000)
    write_wav(tmp_path / "voice.wav", np.repeat(tone, 2), 22050, 2)
    async with SimMic("voice.wav", state_dir=tmp_path, queue_frames=100) as mic:
        await asyncio.sleep(0.6)
        frames = [await asyncio.wait_for(mic.read(), T) for _ in range(25)]  # 0.5 s: loops
    data = b"".join(f.samples for f in frames)
    assert abs(peak_hz(data) - 500) < 5
    x = np.frombuffer(data, dtype="<i2")
    assert 11000 < np.abs(x).max() <= 12001
    # The loop repeats the file: 0.2 s later the signal is the same.
    assert np.array_equal(x[:9600], x[9600:19200])


async def test_sim_mic_rejects_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match=r"nothere\.wav"):
        SimMic("nothere.wav", state_dir=tmp_path)
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(DeviceError, match=r"junk\.wav"):
        SimMic("junk.wav", state_dir=tmp_path)
    with pytest.raises(ValueError, match="tone"):
        SimMic("tone:30000")


async def test_sim_mic_gain() -> None:
    async with SimMic("tone:1000", gain=50, queue_frames=10) as mic:
        frame = await asyncio.wait_for(mic.read(), T)
        mic.set_gain(0)
        muted = await asyncio.wait_for(mic.read(), T)
    peak = np.abs(np.frombuffer(frame.samples, dtype="<i2")).max()
    assert abs(peak - 32767 * 0.5 * percent_to_gain(50)) < 2
    assert muted.samples == bytes(FRAME_BYTES)


async def test_sim_speaker_wav_holds_exactly_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "speaker.wav"
    rng = np.random.default_rng(7)
    frames = [rng.integers(-30000, 30000, FRAME_SAMPLES, dtype=np.int16).astype("<i2").tobytes()
              for _ in range(15)]
    played: list[tuple[bytes, float]] = []
    spk = SimSpeaker(path)
    spk.add_playout_listener(lambda f, at: played.append((f.samples, at)))
    await asyncio.wait_for(spk.start(), T)
    try:
        for i, f in enumerate(frames):
            spk.write(PcmFrame(f, time.monotonic(), i))
            await wait_until(frames_at_least(spk, i + 1), interval=POLL_S)
        # Readable while running: the header is kept up to date as the file grows.
        await asyncio.sleep(0.3)
        params, live = read_wav(path)
        assert params.nchannels == 1 and params.framerate == 48000 and params.sampwidth == 2
        assert params.nframes > 0 and len(live) == 2 * params.nframes
    finally:
        await asyncio.wait_for(spk.stop(), T)
    params, data = read_wav(path)
    assert path.stat().st_size == 44 + len(data)
    slots = [data[i:i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
    assert [s for s in slots if any(s)] == frames  # silence between, nothing else
    assert [p[0] for p in played] == frames
    times = [p[1] for p in played]
    assert all(b - a >= 0.0199 for a, b in itertools.pairwise(times))
    assert spk.stats["dropped"] == 0


async def test_sim_speaker_paces_playout_and_counts_underruns(tmp_path: Path) -> None:
    spk = SimSpeaker(tmp_path / "s.wav")
    tone = saturate_s16(np.sin(2 * np.pi * 1000 * np.arange(FRAME_SAMPLES) / 48000)
                        * 32767 * 0.5).astype("<i2").tobytes()
    await asyncio.wait_for(spk.start(), T)
    try:
        await asyncio.sleep(0.1)
        assert spk.stats["underruns"] == 0  # silence before any stream is no underrun
        assert spk.level_dbfs == -math.inf
        # Three frames at once are played one per 20 ms, not all at once.
        for i in range(3):
            spk.write(PcmFrame(tone, 0.0, i))
        await wait_until(lambda: spk.stats["frames"] == 3, interval=POLL_S)
        assert spk.stats["queued"] == 0
        assert abs(spk.level_dbfs - (-9.03)) < 0.1  # a -6 dBFS-peak sine
        await asyncio.sleep(0.08)  # a gap inside the stream
        spk.write(PcmFrame(tone, 0.0, 3))
        await wait_until(lambda: spk.stats["frames"] == 4, interval=POLL_S)
        assert spk.stats["underruns"] == 1
        # More than the buffer holds at once: the oldest are dropped.
        for i in range(6):
            spk.write(PcmFrame(tone, 0.0, 4 + i))
        # (The playout clock may take one of them while they are being written.)
        assert spk.stats["dropped"] >= 2 and spk.stats["queued"] <= 3
    finally:
        await asyncio.wait_for(spk.stop(), T)
    params, _ = read_wav(tmp_path / "s.wav")
    # The file is a timeline: one 20 ms slot per tick since start.
    assert params.nframes == spk.stats["slots"] * FRAME_SAMPLES


async def test_sim_speaker_rotates_at_the_size_cap(tmp_path: Path) -> None:
    cap = 44 + 10 * FRAME_BYTES
    path = tmp_path / "speaker.wav"
    async with SimSpeaker(path, max_bytes=cap):
        await asyncio.sleep(0.5)  # 25 slots
    old = tmp_path / "speaker.1.wav"
    assert old.exists()
    for p in (path, old):
        params, data = read_wav(p)
        assert p.stat().st_size <= cap and len(data) == 2 * params.nframes
    assert read_wav(old)[0].nframes == 10 * FRAME_SAMPLES


async def test_sim_speaker_volume(tmp_path: Path) -> None:
    frame = np.full(FRAME_SAMPLES, 20000, dtype="<i2").tobytes()
    spk = SimSpeaker(tmp_path / "v.wav", volume=50)
    got: list[bytes] = []
    spk.add_playout_listener(lambda f, at: got.append(f.samples))
    async with spk:
        spk.write(PcmFrame(frame, 0.0))
        await wait_until(lambda: spk.stats["frames"] == 1, interval=POLL_S)
    assert set(np.frombuffer(got[0], dtype="<i2")) == {round(20000 * percent_to_gain(50))}


async def test_factory_picks_the_backend(tmp_path: Path) -> None:
    config = audio_devices(Config())
    assert choose_backend(config, sim=True)[0] == "sim"
    assert choose_backend(config, sim=False)[0] == "alsa"
    mic = open_mic(config, tmp_path, sim=True, emit=lambda n, d: None)
    spk = open_speaker(config, tmp_path, sim=True, emit=lambda n, d: None)
    assert isinstance(mic, SimMic) and isinstance(mic, MicSource)
    assert isinstance(spk, SimSpeaker) and isinstance(spk, SpeakerSink)
    assert spk.path == tmp_path / "speaker.wav"
    alsa = audio_devices(from_dict({"audio": {"backend": "alsa", "mic_device": "plughw:1,0",
                                              "speaker_device": "hw:2,0"}}))
    amic = open_mic(alsa, tmp_path, sim=True, emit=lambda n, d: None)
    aspk = open_speaker(alsa, tmp_path, sim=True, emit=lambda n, d: None)
    assert isinstance(amic, AlsaMic) and amic.device == "plughw:1,0"
    assert isinstance(aspk, AlsaSpeaker) and aspk.device == "hw:2,0"
    assert isinstance(amic, MicSource) and isinstance(aspk, SpeakerSink)


async def test_sim_speaker_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    spk = SimSpeaker(tmp_path / "afile" / "speaker.wav")
    with pytest.raises(DeviceError, match=r"afile/speaker\.wav"):
        await asyncio.wait_for(spk.start(), T)
    await asyncio.wait_for(spk.stop(), T)


async def test_sim_devices_can_be_restarted(tmp_path: Path) -> None:
    mic = SimMic("tone:440")
    with pytest.raises(RuntimeError, match="before start"):
        await asyncio.wait_for(mic.read(), T)
    await mic.start()
    first = [await asyncio.wait_for(mic.read(), T) for _ in range(3)]
    await mic.stop()
    await mic.start()
    again = await asyncio.wait_for(mic.read(), T)
    await mic.stop()
    assert [f.index for f in first] == [0, 1, 2] and again.index == 3
    assert again.captured_at >= first[-1].captured_at + 0.02

    path = tmp_path / "speaker.wav"
    spk = SimSpeaker(path)
    frame = np.full(FRAME_SAMPLES, 1234, dtype="<i2").tobytes()
    for _run in range(2):
        await asyncio.wait_for(spk.start(), T)
        spk.write(PcmFrame(frame, 0.0))
        await wait_until(frames_at_least(spk, _run + 1), interval=POLL_S)
        await asyncio.wait_for(spk.stop(), T)
    # The first run's file is kept as speaker.1.wav; both hold their frame.
    for p in (path, tmp_path / "speaker.1.wav"):
        _, data = read_wav(p)
        assert frame in data


async def test_a_mic_reader_that_runs_late_under_load_loses_nothing_within_300_ms() -> None:
    """The event loop that sends the mic runs late when the CPU is short: by default
    the mics keep what it has not read yet for MIC_QUEUE_MS rather than drop it."""
    import inspect

    from drivers.audio.base import MIC_QUEUE_FRAMES, MIC_QUEUE_MS

    assert MIC_QUEUE_MS >= 300
    assert inspect.signature(AlsaMic).parameters["queue_frames"].default == MIC_QUEUE_FRAMES
    async with SimMic("tone:440") as mic:
        first = await asyncio.wait_for(mic.read(), T)
        await asyncio.sleep(0.25)  # a stall of the reader
        got = [await asyncio.wait_for(mic.read(), T) for _ in range(14)]
    assert mic.stats["dropped"] == 0
    assert [f.index for f in got] == list(range(first.index + 1, first.index + 15))


@pytest.mark.parametrize("spec", ["tone:440", "tone:1000", "tone:441.5"])
def test_a_tones_frames_are_made_once_and_stay_exact(spec: str, tmp_path: Path) -> None:
    from drivers.audio.pcm import apply_gain, percent_to_gain
    from drivers.audio.sim import _Source

    source = _Source(spec, tmp_path)
    for gain in (1.0, percent_to_gain(80), 1.0):
        for n in range(120):
            assert source.frame_at_gain(n, gain) == apply_gain(source.frame(n), gain), (gain, n)
    whole_hz = spec != "tone:441.5"
    assert bool(source._frames) == whole_hz
    assert len(source._frames) <= 4 * max(source._period, 1)

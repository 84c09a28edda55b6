"""The ALSA mic and speaker through real alsa-lib, on file-backed PCMs.

Capture PCMs read their samples from a FIFO the test writes into, which also paces
them (a ``type file`` PCM over ``null`` is otherwise as fast as the CPU).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from drivers.audio.alsa import AlsaMic, AlsaSpeaker
from drivers.audio.base import FRAME_SAMPLES, PcmFrame
from drivers.audio.pcm import FRAME_BYTES, percent_to_gain, saturate_s16
from drivers.errors import DeviceNotFound
from tests.harness.polling import frames_at_least, wait_until

if TYPE_CHECKING:
    from tests.drivers.conftest import AsoundRc

T = 5.0  # seconds any single await may take before the test fails


def known_frames(count: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-20000, 20000, FRAME_SAMPLES, dtype=np.int16).astype("<i2").tobytes()
            for _ in range(count)]


def fifo_writer(path: Path) -> int:
    os.mkfifo(path)
    # O_RDWR never blocks on a FIFO, and keeps it open so the PCM's reads wait for data.
    return os.open(path, os.O_RDWR)


@pytest.mark.parametrize("period_size", [960, 480])
async def test_capture_gives_exactly_the_samples_in_20ms_frames(
        asoundrc: AsoundRc, tmp_path: Path, period_size: int) -> None:
    fifo = tmp_path / "mic.fifo"
    w = fifo_writer(fifo)
    name = asoundrc.file_pcm("testmic", infile=fifo)
    frames = known_frames(12)
    mic = AlsaMic(name, period_size=period_size, buffer_size=period_size * 4)
    await asyncio.wait_for(mic.start(), T)
    try:
        got = []
        for sent in frames:
            os.write(w, sent)
            got.append(await asyncio.wait_for(mic.read(), T))
        assert [f.samples for f in got] == frames
        assert [f.index for f in got] == list(range(len(frames)))
        assert all(f.sample_rate == 48000 and f.channels == 1 for f in got)
        assert all(len(f.samples) == FRAME_BYTES for f in got)
        # Stamped with the capture time of the first sample, on the monotonic clock.
        assert all(f.captured_at <= time.monotonic() for f in got)
        assert mic.stats["dropped"] == 0 and mic.stats["overruns"] == 0
        assert mic.hardware_volume is None  # a file PCM has no mixer: software gain
    finally:
        os.close(w)
        await asyncio.wait_for(mic.stop(), T)
    with pytest.raises(EOFError):
        await asyncio.wait_for(mic.read(), T)


async def test_capture_converts_native_rate_and_channels(
        asoundrc: AsoundRc, tmp_path: Path) -> None:
    fifo = tmp_path / "mic.fifo"
    w = fifo_writer(fifo)
    name = asoundrc.file_pcm("stereo44", infile=fifo)
    # A device that only does 44.1 kHz stereo: 1 kHz in both channels.
    n = 882 * 15
    tone = np.sin(2 * np.pi * 1000 * np.arange(n) / 44100) * 16000
    stereo = np.repeat(saturate_s16(tone), 2).astype("<i2").tobytes()
    mic = AlsaMic(name, rate=44100, channels=2, period_size=882, buffer_size=882 * 4,
                  queue_frames=64)
    await asyncio.wait_for(mic.start(), T)
    try:
        assert mic.params is not None
        assert (mic.params.rate, mic.params.channels) == (44100, 2)
        os.write(w, stereo)
        got = [await asyncio.wait_for(mic.read(), T) for _ in range(14)]
    finally:
        os.close(w)
        await asyncio.wait_for(mic.stop(), T)
    x = np.frombuffer(b"".join(f.samples for f in got), dtype="<i2").astype(np.float64)
    assert x.size == 14 * FRAME_SAMPLES
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    peak_hz = np.argmax(spectrum) * 48000 / x.size
    assert abs(peak_hz - 1000) < 10
    assert 14000 < np.abs(x[100:]).max() < 16500  # level kept, no clipping


async def test_playback_writes_exactly_the_frames_given(
        asoundrc: AsoundRc, tmp_path: Path) -> None:
    out = tmp_path / "played.raw"
    name = asoundrc.file_pcm("testspk", out=out)
    frames = known_frames(20, seed=2)
    heard: list[tuple[bytes, float]] = []
    spk = AlsaSpeaker(name)
    spk.add_playout_listener(lambda f, at: heard.append((f.samples, at)))
    await asyncio.wait_for(spk.start(), T)
    try:
        for i, samples in enumerate(frames):
            before = time.monotonic()
            spk.write(PcmFrame(samples, before, i))
            await wait_until(frames_at_least(spk, i + 1))
    finally:
        await asyncio.wait_for(spk.stop(), T)
    data = out.read_bytes()
    # One period of silence (10 ms by default) primes the device when the stream
    # starts, then every frame.
    assert data == bytes(2 * 480) + b"".join(frames)
    assert [h[0] for h in heard] == frames
    times = [h[1] for h in heard]
    assert times == sorted(times)
    assert spk.stats["dropped"] == 0 and spk.stats["underruns"] == 0
    assert spk.level_dbfs > -20


async def test_playback_converts_to_the_device_format(
        asoundrc: AsoundRc, tmp_path: Path) -> None:
    out = tmp_path / "played.raw"
    name = asoundrc.file_pcm("spk44", out=out)
    spk = AlsaSpeaker(name, rate=44100, channels=2, period_size=882, buffer_size=882 * 4,
                      prefill_frames=0)
    tone = saturate_s16(np.sin(2 * np.pi * 500 * np.arange(20 * FRAME_SAMPLES) / 48000) * 9000)
    await asyncio.wait_for(spk.start(), T)
    try:
        for i in range(20):
            chunk = tone[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES].astype("<i2").tobytes()
            spk.write(PcmFrame(chunk, 0.0, i))
            await wait_until(frames_at_least(spk, i + 1))
    finally:
        await asyncio.wait_for(spk.stop(), T)
    pcm = np.frombuffer(out.read_bytes(), dtype="<i2").reshape(-1, 2)
    assert abs(pcm.shape[0] - 20 * 882) <= 2  # 0.4 s at 44.1 kHz
    assert np.array_equal(pcm[:, 0], pcm[:, 1])
    left = pcm[:, 0].astype(np.float64)
    peak_hz = np.argmax(np.abs(np.fft.rfft(left * np.hanning(left.size)))) * 44100 / left.size
    assert abs(peak_hz - 500) < 10


async def test_software_volume_scales_the_samples(asoundrc: AsoundRc, tmp_path: Path) -> None:
    out = tmp_path / "played.raw"
    name = asoundrc.file_pcm("quiet", out=out)
    frame = known_frames(1, seed=3)[0]
    spk = AlsaSpeaker(name, volume=50, prefill_frames=0)
    await asyncio.wait_for(spk.start(), T)
    try:
        spk.write(PcmFrame(frame, 0.0))
        await wait_until(lambda: spk.stats["frames"] == 1)
        spk.set_volume(0)
        spk.write(PcmFrame(frame, 0.0))
        await wait_until(lambda: spk.stats["frames"] == 2)
    finally:
        await asyncio.wait_for(spk.stop(), T)
    data = out.read_bytes()
    expected = saturate_s16(np.frombuffer(frame, dtype="<i2").astype(np.float32)
                            * np.float32(percent_to_gain(50)))
    assert data[:FRAME_BYTES] == expected.astype("<i2").tobytes()
    assert data[FRAME_BYTES:] == bytes(FRAME_BYTES)
    with pytest.raises(ValueError, match="0-100"):
        spk.set_volume(101)


@pytest.mark.parametrize("cls", [AlsaMic, AlsaSpeaker])
async def test_missing_pcm_raises_device_not_found_listing_what_exists(
        asoundrc: AsoundRc, cls: type[AlsaMic] | type[AlsaSpeaker]) -> None:
    asoundrc.file_pcm("thereisone")
    dev = cls("nosuchpcm")
    with pytest.raises(DeviceNotFound) as info:
        await asyncio.wait_for(dev.start(), T)
    message = str(info.value)
    assert "'nosuchpcm' not found" in message
    assert "thereisone" in message and "sound cards:" in message
    assert isinstance(info.value, FileNotFoundError)
    await asyncio.wait_for(dev.stop(), T)  # stop after a failed start is harmless


async def test_slow_consumer_makes_the_queue_drop_never_grow(
        asoundrc: AsoundRc, tmp_path: Path) -> None:
    fifo = tmp_path / "mic.fifo"
    w = fifo_writer(fifo)
    name = asoundrc.file_pcm("fastmic", infile=fifo)
    sent = 100
    frames = known_frames(sent, seed=4)

    def produce() -> None:  # ten times faster than real time
        for f in frames:
            os.write(w, f)
            time.sleep(0.002)

    mic = AlsaMic(name, queue_frames=4)
    await asyncio.wait_for(mic.start(), T)
    producer = threading.Thread(target=produce)
    producer.start()
    consumed: list[PcmFrame] = []
    try:
        while mic.stats["frames"] < sent:
            consumed.append(await asyncio.wait_for(mic.read(), T))
            assert mic.stats["queued"] <= 4
            await asyncio.sleep(0.03)  # a consumer much slower than the device
        producer.join(T)
        await asyncio.sleep(0.05)  # let hand-overs already scheduled arrive
        stats = mic.stats
        assert stats["frames"] == sent
        assert stats["dropped"] > 0
        assert stats["queued"] <= 4
        assert len(consumed) + stats["dropped"] + stats["queued"] == sent
    finally:
        producer.join(T)
        await asyncio.wait_for(mic.stop(), T)
        os.close(w)
    indexes = [f.index for f in consumed]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    assert all(f.samples == frames[f.index] for f in consumed)


async def test_speaker_lost_then_restored(asoundrc: AsoundRc, tmp_path: Path) -> None:
    """A device that fails mid-stream (here: its output pipe breaks) is closed,
    ``device-lost`` is emitted, and it is reopened once it can be: ``device-restored``."""
    out = tmp_path / "out.fifo"
    os.mkfifo(out)
    reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
    name = asoundrc.file_pcm("flaky", out=out)
    events: list[tuple[str, dict[str, Any]]] = []
    spk = AlsaSpeaker(name, prefill_frames=0, backoff=(0.05,),
                      emit=lambda n, d: events.append((n, d)))
    frame = known_frames(1, seed=5)[0]
    await asyncio.wait_for(spk.start(), T)
    try:
        for i in range(5):
            spk.write(PcmFrame(frame, 0.0, i))
            await wait_until(frames_at_least(spk, i + 1))
        # "Unplug": the next open finds a plain file; the open pipe loses its reader.
        replacement = tmp_path / "replacement"
        replacement.write_bytes(b"")
        os.replace(replacement, out)
        os.close(reader)

        async def feed_until(event: str) -> None:
            while not any(n == event for n, _ in events):
                spk.write(PcmFrame(frame, 0.0))
                await asyncio.sleep(0.01)

        await asyncio.wait_for(feed_until("device-lost"), T)
        await asyncio.wait_for(feed_until("device-restored"), T)
        restored_frames = spk.stats["frames"]
        for _ in range(3):
            spk.write(PcmFrame(frame, 0.0))
            await wait_until(frames_at_least(spk, restored_frames + 1))
            restored_frames = spk.stats["frames"]
    finally:
        await asyncio.wait_for(spk.stop(), T)
    names = [n for n, _ in events]
    assert names[:2] == ["device-lost", "device-restored"]
    lost = events[0][1]
    assert lost["device"] == "flaky" and lost["kind"] == "speaker" and lost["error"]
    assert spk.stats["reopens"] >= 1
    data = out.read_bytes()  # what was played after the reopen went to the new file
    assert len(data) >= 3 * FRAME_BYTES and len(data) % FRAME_BYTES == 0
    assert data[:FRAME_BYTES] == frame


async def test_mic_lost_then_restored(asoundrc: AsoundRc, tmp_path: Path) -> None:
    """The capture side of the same: frames flow again after ``device-restored``."""
    fifo = tmp_path / "mic.fifo"
    w = fifo_writer(fifo)
    # A capture file PCM also copies what it captures to `file`: a pipe we can break.
    copy = tmp_path / "copy.fifo"
    os.mkfifo(copy)
    reader = os.open(copy, os.O_RDONLY | os.O_NONBLOCK)
    name = asoundrc.file_pcm("flakymic", out=copy, infile=fifo)
    events: list[tuple[str, dict[str, Any]]] = []
    mic = AlsaMic(name, backoff=(0.05,), queue_frames=64,
                  emit=lambda n, d: events.append((n, d)))
    frames = known_frames(3, seed=6)
    await asyncio.wait_for(mic.start(), T)
    try:
        os.write(w, frames[0])
        assert (await asyncio.wait_for(mic.read(), T)).samples == frames[0]
        replacement = tmp_path / "replacement"
        replacement.write_bytes(b"")
        os.replace(replacement, copy)
        os.close(reader)

        async def feed_until(event: str) -> None:
            while not any(n == event for n, _ in events):
                os.write(w, frames[1])
                await asyncio.sleep(0.01)

        await asyncio.wait_for(feed_until("device-lost"), T)
        await asyncio.wait_for(feed_until("device-restored"), T)
        while True:  # skip what was captured around the loss
            try:
                await asyncio.wait_for(mic.read(), 0.2)
            except TimeoutError:
                break
        os.write(w, frames[2])
        assert (await asyncio.wait_for(mic.read(), T)).samples == frames[2]
    finally:
        os.close(w)
        await asyncio.wait_for(mic.stop(), T)
    assert [n for n, _ in events][:2] == ["device-lost", "device-restored"]
    assert events[0][1]["kind"] == "mic" and events[1][1]["device"] == "flakymic"
    assert mic.stats["reopens"] >= 1


def drain_fifo(fifo: Path) -> None:
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                if not os.read(fd, 65536):
                    return
            except BlockingIOError:
                return
    finally:
        os.close(fd)


async def test_mic_can_be_restarted(asoundrc: AsoundRc, tmp_path: Path) -> None:
    fifo = tmp_path / "mic.fifo"
    w = fifo_writer(fifo)
    name = asoundrc.file_pcm("again", infile=fifo)
    frames = known_frames(2, seed=8)
    mic = AlsaMic(name)
    try:
        for sent in frames:
            await asyncio.wait_for(mic.start(), T)
            os.write(w, sent)
            got = await asyncio.wait_for(mic.read(), T)
            assert got.samples == sent
            stopping = asyncio.create_task(mic.stop(), name="mic-stop")
            await asyncio.sleep(0.05)
            os.write(w, sent)  # releases the device thread blocked in its next read
            await asyncio.wait_for(stopping, T)
            with pytest.raises(EOFError):
                await asyncio.wait_for(mic.read(), T)
            # If the device closed before its thread read the release bytes, they are
            # still in the pipe: take them out so the next start reads the next frame.
            drain_fifo(fifo)
    finally:
        os.close(w)
        await asyncio.wait_for(mic.stop(), T)
    assert mic.stats["frames"] >= 2

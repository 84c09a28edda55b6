"""Faults alsa-lib's file PCMs cannot produce (they never run dry and are never busy):
xruns, a busy device, and the hardware mixer, with a fake PCM / mixer injected into the
real driver code (the way kvmd tests its audio)."""

from __future__ import annotations

import asyncio
import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import alsaaudio
import numpy as np
import pytest

from drivers.audio.alsa import AlsaMic, AlsaSpeaker
from drivers.audio.alsa_device import DeviceParams, open_pcm
from drivers.audio.alsa_mixer import Mixer
from drivers.audio.base import FRAME_SAMPLES, PcmFrame
from drivers.audio.pcm import FRAME_BYTES
from drivers.errors import DeviceBusy, DeviceError
from tests.harness.polling import wait_until

T = 5.0
PARAMS = DeviceParams(rate=48000, channels=1, format="S16_LE", period_size=960,
                      buffer_size=3840)


class FakePcm:
    """Replays scripted read results; records writes; fails a write with EPIPE once."""

    def __init__(self, reads: list[tuple[int, bytes]] | None = None,
                 fail_write_at: int | None = None) -> None:
        self.reads = list(reads or [])
        self.written: list[bytes] = []
        self.writes = 0
        self.fail_write_at = fail_write_at
        self.running = False
        self.xrun = False  # the device ran dry while nobody wrote
        self.closed = False

    def read(self) -> tuple[int, bytes]:
        if self.reads:
            return self.reads.pop(0)
        raise alsaaudio.ALSAAudioError("No such device [fake]")  # then: unplugged

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.xrun:
            self.xrun = self.running = False  # pyalsaaudio re-prepares, reports EPIPE
            return -errno.EPIPE
        if self.writes == self.fail_write_at:
            self.running = False  # what pyalsaaudio leaves after an underrun
            return -errno.EPIPE
        self.written.append(bytes(data))
        self.running = True
        return len(data) // 2

    def state(self) -> int:
        if self.xrun:
            return alsaaudio.PCM_STATE_XRUN
        return alsaaudio.PCM_STATE_RUNNING if self.running else alsaaudio.PCM_STATE_PREPARED

    def avail(self) -> int:
        return PARAMS.buffer_size

    def close(self) -> None:
        self.closed = True


def opener_of(*pcms: FakePcm) -> Callable[..., tuple[Any, DeviceParams]]:
    queue = list(pcms)

    def opener(device: str, **kwargs: Any) -> tuple[Any, DeviceParams]:
        if not queue:
            raise DeviceError(f"{device}: gone for good")
        return queue.pop(0), PARAMS
    return opener


def frame(value: int) -> bytes:
    return np.full(FRAME_SAMPLES, value, dtype="<i2").tobytes()


async def test_mic_overrun_is_recovered_in_place_and_counted() -> None:
    pcm = FakePcm([(960, frame(1)), (-errno.EPIPE, b""), (960, frame(2)), (960, frame(3))])
    events: list[str] = []
    mic = AlsaMic("fake", opener=opener_of(pcm), backoff=(10.0,),
                  emit=lambda n, d: events.append(n))
    await asyncio.wait_for(mic.start(), T)
    try:
        got = [await asyncio.wait_for(mic.read(), T) for _ in range(3)]
    finally:
        await asyncio.wait_for(mic.stop(), T)
    assert [f.samples for f in got] == [frame(1), frame(2), frame(3)]
    assert mic.stats["overruns"] == 1
    assert events == ["device-lost"]  # only when the script ran out (device gone)


async def test_speaker_underrun_rewrites_the_frame_after_priming() -> None:
    pcm = FakePcm(fail_write_at=3)  # prefill, frame 1, then frame 2 hits an underrun
    spk = AlsaSpeaker("fake", opener=opener_of(pcm), prefill_frames=1)
    await asyncio.wait_for(spk.start(), T)
    try:
        for i in (1, 2):
            spk.write(PcmFrame(frame(i), 0.0, i))
            await wait_until(lambda i=i: spk.stats["frames"] >= i)  # type: ignore[misc]
    finally:
        await asyncio.wait_for(spk.stop(), T)
    silence = bytes(FRAME_BYTES)
    assert pcm.written == [silence, frame(1), silence, frame(2)]
    assert spk.stats["underruns"] == 1
    assert pcm.closed


async def test_speaker_found_stopped_by_an_underrun_is_counted_and_primed_again() -> None:
    pcm = FakePcm()
    spk = AlsaSpeaker("fake", opener=opener_of(pcm), prefill_frames=1)
    await asyncio.wait_for(spk.start(), T)
    try:
        spk.write(PcmFrame(frame(1), 0.0))
        await wait_until(lambda: spk.stats["frames"] >= 1)
        pcm.xrun = True  # the producer was late: the device stopped
        spk.write(PcmFrame(frame(2), 0.0))
        await wait_until(lambda: spk.stats["frames"] >= 2)
    finally:
        await asyncio.wait_for(spk.stop(), T)
    silence = bytes(FRAME_BYTES)
    assert pcm.written == [silence, frame(1), silence, frame(2)]
    assert spk.stats["underruns"] == 1


async def test_speaker_pause_between_streams_is_not_an_underrun() -> None:
    pcm = FakePcm(fail_write_at=3)
    spk = AlsaSpeaker("fake", opener=opener_of(pcm), idle_s=0.05)
    await asyncio.wait_for(spk.start(), T)
    try:
        spk.write(PcmFrame(frame(1), 0.0))
        await wait_until(lambda: spk.stats["frames"] >= 1)
        await asyncio.sleep(0.1)
        spk.write(PcmFrame(frame(2), 0.0))
        await wait_until(lambda: spk.stats["frames"] >= 2)
    finally:
        await asyncio.wait_for(spk.stop(), T)
    assert spk.stats["underruns"] == 0 and pcm.written[-1] == frame(2)


def busy_pcm(*args: Any, **kwargs: Any) -> Any:
    raise alsaaudio.ALSAAudioError(f"Device or resource busy [{kwargs['device']}]")


async def test_busy_device_raises_device_busy_naming_the_holder(fake_asound: Path) -> None:
    proc = fake_asound
    opener = functools.partial(open_pcm, pcm_class=busy_pcm, proc=proc)
    mic = AlsaMic("plughw:1,0", opener=opener)
    with pytest.raises(DeviceBusy) as info:
        await asyncio.wait_for(mic.start(), T)
    message = str(info.value)
    assert "'plughw:1,0' is busy" in message
    assert f"arecord (pid {os.getpid()}" in message
    spk = AlsaSpeaker("plughw:1,0", opener=opener)
    with pytest.raises(DeviceBusy, match="held by another process"):
        await asyncio.wait_for(spk.start(), T)  # nobody holds the playback side in /proc


class FakeControl:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail = fail

    def setvolume(self, volume: int, pcmtype: int) -> None:
        if self.fail:
            raise alsaaudio.ALSAAudioError("Input/output error [hw:1]")
        self.calls.append((volume, pcmtype))

    def close(self) -> None:
        pass


async def test_hardware_mixer_is_used_and_software_gain_is_the_fallback() -> None:
    pcm = FakePcm()
    spk = AlsaSpeaker("fake", opener=opener_of(pcm), prefill_frames=0)
    await asyncio.wait_for(spk.start(), T)
    try:
        control = FakeControl()
        spk._mixer = Mixer(control, "Master", capture=False)
        spk.set_volume(30)
        assert control.calls == [(30, alsaaudio.PCM_PLAYBACK)]
        assert spk.hardware_volume == "Master"
        spk.write(PcmFrame(frame(1000), 0.0))
        await wait_until(lambda: spk.stats["frames"] >= 1)
        assert pcm.written[-1] == frame(1000)  # the card does the volume

        spk._mixer = Mixer(FakeControl(fail=True), "Master", capture=False)
        spk.set_volume(50)  # the control fails: software gain from now on
        assert spk.hardware_volume is None
        spk.write(PcmFrame(frame(1000), 0.0))
        await wait_until(lambda: spk.stats["frames"] >= 2)
        assert pcm.written[-1] == frame(125)  # 1000 x 0.5^3
    finally:
        await asyncio.wait_for(spk.stop(), T)


async def test_capture_mixer_gets_the_capture_direction() -> None:
    mic = AlsaMic("fake", opener=opener_of(FakePcm([(960, frame(1))] * 50)))
    control = FakeControl()
    mic._mixer = Mixer(control, "Capture", capture=True)
    mic.set_gain(70)
    assert control.calls == [(70, alsaaudio.PCM_CAPTURE)]

"""The V4L2 backend: error mapping on real paths, and its capture thread on a real FFmpeg source.

This machine has no camera, so the capture loop runs on FFmpeg's lavfi ``testsrc`` (a
real demuxer and decoder, paced to real time by the ``realtime`` filter) through the
backend's ``opener`` hook; the V4L2 open itself is exercised on paths that fail.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from fractions import Fraction
from typing import Any

import av
import av.container
import pytest

from drivers.camera.base import VideoSource
from drivers.camera.devices import holders_of, list_video_nodes
from drivers.camera.v4l2 import V4L2Camera
from drivers.errors import DeviceBusy, DeviceError, DeviceNotFound, EdgeroomError

T = 5.0


def _testsrc(duration: float | None = None) -> av.container.InputContainer:
    spec = "testsrc=size=320x240:rate=30" + (f":duration={duration}" if duration else "")
    return av.open(spec + ",realtime", format="lavfi")


async def test_missing_device_raises_device_not_found_naming_it() -> None:
    missing = "/dev/video-edgeroom-missing"
    cam = V4L2Camera(missing, 640, 480, 30)
    assert isinstance(cam, VideoSource)
    with pytest.raises(DeviceNotFound) as info:
        await asyncio.wait_for(cam.start(), T)
    message = str(info.value)
    assert missing in message
    nodes = list_video_nodes()
    if nodes:
        assert all(n.path in message for n in nodes)
    else:
        assert "no /dev/video* devices present" in message
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, EdgeroomError)
    await cam.stop()
    await cam.stop()


async def test_a_path_that_is_no_camera_is_a_clear_error() -> None:
    cam = V4L2Camera("/dev/null", 640, 480, 30)
    with pytest.raises(DeviceError, match=r"/dev/null is not a V4L2 capture device"):
        await asyncio.wait_for(cam.start(), T)


async def test_busy_device_names_the_holder() -> None:
    with tempfile.NamedTemporaryFile() as held:
        def busy() -> av.container.InputContainer:
            raise OSError(errno.EBUSY, "Device or resource busy")

        cam = V4L2Camera(held.name, opener=busy)
        with pytest.raises(DeviceBusy) as info:
            await asyncio.wait_for(cam.start(), T)
        assert held.name in str(info.value)
        assert f"{os.getpid()} (" in str(info.value)  # this process holds it open
        assert f"{os.getpid()} (" in " ".join(holders_of(held.name))


async def test_frames_are_newest_first_yuv420p_at_the_configured_size() -> None:
    async with V4L2Camera("testsrc", 160, 120, 30, opener=_testsrc) as cam:
        first = await asyncio.wait_for(cam.read(), T)
        await asyncio.sleep(0.4)  # about 12 frames arrive unread
        newest = await asyncio.wait_for(cam.read(), T)
        stats = cam.stats
    for captured in (first, newest):
        frame = captured.frame
        assert (frame.width, frame.height, frame.format.name) == (160, 120, "yuv420p")
        assert frame.time_base == Fraction(1, 90000)
    assert newest.index > first.index + 1
    assert newest.captured_at > first.captured_at
    assert newest.frame.pts > first.frame.pts
    assert stats["delivered"] == 2
    assert stats["skipped"] >= newest.index - first.index - 1 > 0
    with pytest.raises(EOFError):
        await asyncio.wait_for(cam.read(), T)


async def test_unplug_emits_lost_then_restored_and_capture_goes_on() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    opens = 0

    def flaky() -> av.container.InputContainer:
        nonlocal opens
        opens += 1
        if opens == 1:
            return _testsrc(duration=0.3)  # the stream ends: the camera was unplugged
        if opens == 2:
            raise OSError(errno.ENODEV, "No such device")  # still gone at the first retry
        return _testsrc()

    restored = asyncio.Event()

    def emit(name: str, data: dict[str, Any]) -> None:
        events.append((name, data))
        if name == "device-restored":
            restored.set()

    cam = V4L2Camera("/dev/video7", 160, 120, 30, opener=flaky, emit=emit, backoff=(0.05,))
    await asyncio.wait_for(cam.start(), T)
    try:
        before = await asyncio.wait_for(cam.read(), T)
        await asyncio.wait_for(restored.wait(), T)
        after = await asyncio.wait_for(cam.read(), T)
    finally:
        await asyncio.wait_for(cam.stop(), T)
    names = [name for name, _ in events]
    assert names == ["device-lost", "device-restored"]
    assert events[0][1]["device"] == "/dev/video7"
    assert events[0][1]["kind"] == "camera"
    assert cam.stats["reopens"] == 1
    assert opens == 3
    assert after.index > before.index
    assert after.frame.pts > before.frame.pts


class GoneForGood:
    """A camera that streams for 0.2 s and is then unplugged for good: ``opens`` counts
    the attempts to open it, ``lost`` is set at its ``device-lost`` event."""

    def __init__(self) -> None:
        self.opens = 0
        self.lost = asyncio.Event()

    def open(self) -> av.container.InputContainer:
        self.opens += 1
        if self.opens == 1:
            return _testsrc(duration=0.2)
        raise OSError(errno.ENODEV, "No such device")

    def emit(self, name: str, data: dict[str, Any]) -> None:
        if name == "device-lost":
            self.lost.set()

    def camera(self) -> V4L2Camera:
        return V4L2Camera("/dev/video9", 160, 120, 30, opener=self.open, emit=self.emit,
                          backoff=(0.05,))


async def test_stop_while_the_device_is_gone_wakes_the_reader() -> None:
    gone = GoneForGood()
    cam = gone.camera()
    await asyncio.wait_for(cam.start(), T)
    await asyncio.wait_for(gone.lost.wait(), T)
    while True:  # take what was captured before the loss, then wait on an empty slot
        try:
            await asyncio.wait_for(cam.read(), 0.3)
        except TimeoutError:
            break
    pending = asyncio.create_task(cam.read(), name="read-while-lost")
    await asyncio.sleep(0.2)  # several reopen attempts fail meanwhile
    assert not pending.done()
    await asyncio.wait_for(cam.stop(), T)
    with pytest.raises(EOFError):
        await asyncio.wait_for(pending, T)
    assert gone.opens >= 3
    assert cam.stats["reopens"] == 0


async def test_a_reading_thread_gets_the_frames_and_the_loop_none() -> None:
    cam = V4L2Camera("testsrc", 160, 120, 30, opener=_testsrc)
    assert cam.reads_in_thread
    with pytest.raises(RuntimeError, match=r"read_sync\(\) before start"):
        cam.read_sync(0.1)
    await asyncio.wait_for(cam.start(), T)
    try:
        first = await asyncio.to_thread(cam.read_sync, T)
        await asyncio.sleep(0.4)  # about 12 frames arrive while the thread is busy
        newest = await asyncio.to_thread(cam.read_sync, T)
        loop_skipped = cam._queue.dropped
        await asyncio.sleep(0.2)
        stats = cam.stats
        queued_for_the_loop = len(cam._queue)
    finally:
        await asyncio.wait_for(cam.stop(), T)
    assert first is not None and newest is not None
    frame = newest.frame
    assert (frame.width, frame.height, frame.format.name) == (160, 120, "yuv420p")
    assert newest.index > first.index + 1 and newest.frame.pts > first.frame.pts
    assert stats["delivered"] == 2
    # the frames the thread did not take were replaced by newer ones, not queued for
    # the loop: the loop's queue stopped taking frames at the first thread read
    assert stats["skipped"] - loop_skipped >= newest.index - first.index - 1 > 0
    assert cam._queue.dropped == loop_skipped <= 1
    assert queued_for_the_loop <= 1  # at most one from before the first thread read
    with pytest.raises(EOFError):
        cam.read_sync(0.1)


async def test_stop_wakes_a_thread_waiting_for_a_frame() -> None:
    gone = GoneForGood()
    cam = gone.camera()
    await asyncio.wait_for(cam.start(), T)
    await asyncio.wait_for(asyncio.to_thread(cam.read_sync, T), T)
    await asyncio.wait_for(gone.lost.wait(), T)
    while await asyncio.to_thread(cam.read_sync, 0.3) is not None:
        pass  # what was captured before the loss
    assert await asyncio.to_thread(cam.read_sync, 0.2) is None  # a timeout, not an end
    waiting = asyncio.ensure_future(asyncio.to_thread(cam.read_sync, 30.0))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(cam.stop(), T)
    with pytest.raises(EOFError):
        await asyncio.wait_for(waiting, T)
    assert asyncio.get_running_loop().time() - started < 5.0  # not the 30 s timeout

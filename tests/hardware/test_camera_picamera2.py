"""picamera2 on a real board: frames arrive as yuv420p at the configured size and rate."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import pytest

from drivers.camera.devices import list_libcamera_cameras

pytestmark = pytest.mark.hardware

_CAMERAS = list_libcamera_cameras()
if _CAMERAS is None:
    pytest.skip("picamera2 does not import here (Raspberry Pi OS with python3-picamera2 "
                "only)", allow_module_level=True)
if not _CAMERAS:
    pytest.skip("picamera2 imports but libcamera lists no camera (is one connected and "
                "enabled?)", allow_module_level=True)

from drivers.camera.picam import PiCamera  # noqa: E402
from drivers.errors import DeviceNotFound  # noqa: E402


async def test_picamera2_delivers_newest_yuv420p_frames() -> None:
    events: list[str] = []
    async with PiCamera(0, 640, 480, 30, emit=lambda name, data: events.append(name)) as cam:
        first = await asyncio.wait_for(cam.read(), 10)
        t0 = time.monotonic()
        frames = [await asyncio.wait_for(cam.read(), 5) for _ in range(30)]
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.5)  # about 15 frames pass unread
        newest = await asyncio.wait_for(cam.read(), 5)
        stats = cam.stats
    for captured in (first, *frames, newest):
        frame = captured.frame
        assert (frame.width, frame.height, frame.format.name) == (640, 480, "yuv420p")
        assert frame.time_base == Fraction(1, 90000)
        assert captured.captured_at <= time.monotonic()
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert 15 < 30 / elapsed < 45  # roughly the configured 30 fps
    assert newest.index > frames[-1].index + 1
    assert stats["skipped"] > 0
    assert events == []


async def test_missing_camera_number_is_device_not_found() -> None:
    assert _CAMERAS is not None
    cam = PiCamera(len(_CAMERAS), 640, 480, 30)
    with pytest.raises(DeviceNotFound, match="libcamera cameras"):
        await asyncio.wait_for(cam.start(), 10)

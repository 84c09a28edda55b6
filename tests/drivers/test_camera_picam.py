"""The parts of the picamera2 backend that run anywhere, and the backend choice.

Capturing from a real libcamera camera is exercised in tests/hardware/ on a board.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from device.config import Config
from device.settings import camera
from drivers.camera import VideoSource, choose_backend, open_camera
from drivers.camera.devices import picamera2_importable
from drivers.camera.picam import PiCamera, capture_time, yuv420_frame
from drivers.camera.sim import PatternRenderer, SimCamera
from drivers.camera.strip import StripInfo, decode_strip
from drivers.camera.v4l2 import V4L2Camera
from drivers.errors import DeviceError


@pytest.mark.parametrize("stride", [320, 384])
def test_yuv420_buffer_with_stride_becomes_a_yuv420p_frame(stride: int) -> None:
    w, h = 320, 240
    source = PatternRenderer(w, h).render(4242, 7.5)
    planes = [np.asarray(p).reshape(-1) for p in source.planes]
    y = planes[0].reshape(h, w)
    u = planes[1].reshape(h // 2, w // 2)
    v = planes[2].reshape(h // 2, w // 2)
    # lay the planes out as libcamera does, with padding at the end of every row
    pad = np.full((h, stride - w), 99, np.uint8)
    cpad = np.full((h // 2, (stride - w) // 2), 99, np.uint8)
    buffer = np.concatenate([
        np.hstack([y, pad]).reshape(-1),
        np.hstack([u, cpad]).reshape(-1),
        np.hstack([v, cpad]).reshape(-1),
    ]).reshape(h * 3 // 2, stride)  # the shape picamera2's MappedArray has
    frame = yuv420_frame(buffer, w, h, stride)
    assert frame.format.name == "yuv420p"
    assert np.array_equal(frame.to_ndarray(), source.to_ndarray())
    assert decode_strip(frame) == StripInfo(4242, 7500)


def test_short_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        yuv420_frame(np.zeros(100, np.uint8), 320, 240, 320)


def test_capture_time_prefers_a_plausible_sensor_timestamp() -> None:
    assert capture_time({"SensorTimestamp": 99_950_000_000}, 100.0) == pytest.approx(99.95)
    assert capture_time({"SensorTimestamp": 5_000_000_000}, 100.0) == 100.0  # other clock
    assert capture_time({"SensorTimestamp": 101_000_000_000}, 100.0) == 100.0  # future
    assert capture_time({}, 100.0) == 100.0


async def test_picamera2_backend_without_picamera2_is_a_clear_error() -> None:
    if picamera2_importable():
        pytest.skip("picamera2 imports here: tests/hardware/ covers this machine")
    cam = PiCamera(0, 640, 480, 30)
    assert isinstance(cam, VideoSource)
    with pytest.raises(DeviceError, match="picamera2 is not available"):
        await asyncio.wait_for(cam.start(), 5)


def test_factory_picks_the_backend_from_config() -> None:
    config = Config()
    assert choose_backend(camera(config), sim=True) == ("sim", "auto with --sim")
    cam = open_camera(camera(config), sim=True)
    assert isinstance(cam, SimCamera)
    assert (cam.width, cam.height, cam.fps) == (640, 480, 30)

    small = config.replace({"video": {"backend": "v4l2", "device": "/dev/video3",
                                      "width": 320, "height": 240, "fps": 15,
                                      "input_format": "mjpeg"}})
    v4l2 = open_camera(camera(small), sim=True)  # an explicit backend wins over --sim
    assert isinstance(v4l2, V4L2Camera)
    assert (v4l2.device, v4l2.width, v4l2.height, v4l2.fps) == ("/dev/video3", 320, 240, 15)
    assert v4l2.input_format == "mjpeg"

    picam = open_camera(camera(config.replace({"video": {"backend": "picamera2"}})), sim=False)
    assert isinstance(picam, PiCamera)
    sim_camera = camera(config.replace({"video": {"backend": "sim"}}))
    assert isinstance(open_camera(sim_camera, sim=False), SimCamera)

    backend, reason = choose_backend(camera(config), sim=False)
    if picamera2_importable():
        assert backend in ("picamera2", "v4l2")
    else:
        assert (backend, reason) == ("v4l2", "auto: picamera2 does not import")
        assert isinstance(open_camera(camera(config), sim=False), V4L2Camera)

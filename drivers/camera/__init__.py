"""Cameras: the :class:`VideoSource` interface, the picamera2, V4L2 and sim backends.

:func:`open_camera` picks the backend from the config; the returned source is not yet
started (``await source.start()`` opens the device and raises the driver errors).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from drivers.base import Emit, null_emit
from drivers.camera.base import TIME_BASE, CapturedFrame, VideoSource, pts_for
from drivers.camera.devices import list_libcamera_cameras
from drivers.camera.strip import StripInfo, decode_strip

if TYPE_CHECKING:
    from device.config import Config

__all__ = [
    "TIME_BASE",
    "CapturedFrame",
    "StripInfo",
    "VideoSource",
    "choose_backend",
    "decode_strip",
    "open_camera",
    "pts_for",
]

log = logging.getLogger(__name__)


def choose_backend(config: Config, *, sim: bool) -> tuple[str, str]:
    """The camera backend the appliance would use, and why: ``(backend, reason)``."""
    wanted = config.video.backend
    if wanted != "auto":
        return wanted, f'video.backend = "{wanted}"'
    if sim:
        return "sim", "auto with --sim"
    cameras = list_libcamera_cameras()
    if cameras is None:
        return "v4l2", "auto: picamera2 does not import"
    if not cameras:
        return "v4l2", "auto: picamera2 finds no libcamera camera"
    return "picamera2", f"auto: libcamera camera {cameras[0]['model'] or 0}"


def open_camera(config: Config, *, sim: bool, emit: Emit = null_emit) -> VideoSource:
    """A camera for ``config.video`` (and ``config.sim.camera`` for the sim backend)."""
    video = config.video
    backend, reason = choose_backend(config, sim=sim)
    log.info("camera backend: %s (%s)", backend, reason)
    if backend == "sim":
        from drivers.camera.sim import SimCamera

        return SimCamera(video.width, video.height, video.fps, pattern=config.sim.camera)
    if backend == "picamera2":
        from drivers.camera.picam import PiCamera

        return PiCamera(0, video.width, video.height, video.fps, emit=emit)
    from drivers.camera.v4l2 import V4L2Camera

    return V4L2Camera(video.device, video.width, video.height, video.fps,
                      input_format=video.input_format, emit=emit)

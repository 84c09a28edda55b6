"""Cameras: the :class:`VideoSource` interface, the picamera2, V4L2 and sim backends.

:func:`open_camera` opens what a :class:`CameraSettings` says, on the backend it names; the
returned source is not yet started (``await source.start()`` opens the device and raises
the driver errors).
"""

from __future__ import annotations

import logging

from drivers.base import Emit, null_emit
from drivers.camera.base import TIME_BASE, CapturedFrame, VideoSource, pts_for
from drivers.camera.devices import list_libcamera_cameras
from drivers.camera.settings import CameraSettings
from drivers.camera.strip import StripInfo, decode_strip

__all__ = [
    "TIME_BASE",
    "CameraSettings",
    "CapturedFrame",
    "StripInfo",
    "VideoSource",
    "choose_backend",
    "decode_strip",
    "open_camera",
    "pts_for",
]

log = logging.getLogger(__name__)


def choose_backend(settings: CameraSettings, *, sim: bool) -> tuple[str, str]:
    """The camera backend the appliance would use, and why: ``(backend, reason)``."""
    wanted = settings.backend
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


def open_camera(settings: CameraSettings, *, sim: bool, emit: Emit = null_emit) -> VideoSource:
    """The camera ``settings`` describe (not started)."""
    backend, reason = choose_backend(settings, sim=sim)
    log.info("camera backend: %s (%s)", backend, reason)
    if backend == "sim":
        from drivers.camera.sim import SimCamera

        return SimCamera(settings.width, settings.height, settings.fps,
                         pattern=settings.sim_pattern)
    if backend == "picamera2":
        from drivers.camera.picam import PiCamera

        return PiCamera(0, settings.width, settings.height, settings.fps, emit=emit)
    from drivers.camera.v4l2 import V4L2Camera

    return V4L2Camera(settings.device, settings.width, settings.height, settings.fps,
                      input_format=settings.input_format, emit=emit)

"""Raspberry Pi cameras (CSI, via libcamera) through ``picamera2``.

``picamera2`` is imported only when a :class:`PiCamera` opens, so this module loads
anywhere; on a machine without it, opening raises :class:`~drivers.errors.DeviceError`.
The camera is configured for video with a YUV420 main stream at the configured size and
``FrameRate`` control; a capture thread pulls completed requests (``capture_request``),
copies the planes straight into a yuv420p ``av.VideoFrame`` (one copy, honouring the
stride) and releases the request at once so libcamera never runs out of buffers.
The capture time is the request's ``SensorTimestamp`` (start of exposure, on the
monotonic clock) when it is plausible, else the moment the request completed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import av
import numpy as np

from drivers.base import Emit, null_emit
from drivers.camera.devices import list_libcamera_cameras
from drivers.camera.planes import plane_rows
from drivers.camera.threaded import BACKOFF, ThreadedCamera
from drivers.errors import DeviceBusy, DeviceError, DeviceNotFound

log = logging.getLogger(__name__)


def yuv420_frame(buffer: Any, width: int, height: int, stride: int) -> av.VideoFrame:
    """A yuv420p frame from a libcamera YUV420 buffer (Y rows, then U, then V; chroma
    rows are ``stride // 2`` bytes). ``buffer`` is anything numpy can view as bytes."""
    flat = np.asarray(buffer, dtype=np.uint8).reshape(-1)
    cstride, cw, chh = stride // 2, width // 2, height // 2
    y_end = stride * height
    u_end = y_end + cstride * chh
    v_end = u_end + cstride * chh
    if flat.size < v_end:
        raise ValueError(f"YUV420 buffer of {flat.size} bytes is too small for "
                         f"{width}x{height} with stride {stride}")
    frame = av.VideoFrame(width, height, "yuv420p")
    sources = (
        flat[:y_end].reshape(height, stride)[:, :width],
        flat[y_end:u_end].reshape(chh, cstride)[:, :cw],
        flat[u_end:v_end].reshape(chh, cstride)[:, :cw],
    )
    for plane, source in zip(frame.planes, sources, strict=True):
        rows, cols = source.shape
        plane_rows(plane, rows, cols)[:] = source
    return frame


def capture_time(metadata: dict[str, Any], completed_at: float) -> float:
    """``SensorTimestamp`` (ns, monotonic) as seconds if plausible, else ``completed_at``."""
    stamp = metadata.get("SensorTimestamp")
    if isinstance(stamp, int):
        sensor = stamp / 1e9
        if 0.0 <= completed_at - sensor < 1.0:
            return sensor
    return completed_at


class PiCamera(ThreadedCamera[Any]):
    """A :class:`~drivers.camera.base.VideoSource` on libcamera camera ``camera_num``."""

    kind = "picamera2"

    def __init__(self, camera_num: int = 0, width: int = 640, height: int = 480,
                 fps: int = 30, *, emit: Emit = null_emit, read_timeout: float = 3.0,
                 backoff: Sequence[float] = BACKOFF) -> None:
        super().__init__(f"libcamera:{camera_num}", width, height, fps, emit=emit,
                         read_timeout=read_timeout, backoff=backoff)
        self.camera_num = camera_num

    def _open(self) -> Any:
        try:
            from picamera2 import Picamera2
        except Exception as exc:
            raise DeviceError(f"camera {self.device}: picamera2 is not available ({exc}); "
                              'install it (apt install python3-picamera2) or use '
                              'video.backend = "v4l2"') from exc
        cameras = list_libcamera_cameras() or []
        if self.camera_num >= len(cameras):
            present = ", ".join(f"{c['number']} ({c['model']})" for c in cameras) or "none"
            raise DeviceNotFound(f"camera {self.device} not found; libcamera cameras: {present}")
        model = cameras[self.camera_num]["model"]
        try:
            cam = Picamera2(self.camera_num)
        except Exception as exc:
            # picamera2 hides the cause; with the camera listed, acquire() failing means
            # another process (rpicam-vid, a second appliance instance) holds it
            raise DeviceBusy(f"camera {self.device} ({model}) could not be acquired; "
                             f"another process may hold it: {exc}") from exc
        try:
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"},
                controls={"FrameRate": float(self.fps)},
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:
            cam.close()
            raise DeviceError(f"camera {self.device} ({model}) refuses YUV420 "
                              f"{self.width}x{self.height}@{self.fps}: {exc}") from exc
        main = cam.camera_config["main"]
        log.info("camera %s (%s): main stream %s, stride %s", self.device, model,
                 main["size"], main["stride"])
        return cam

    def _pump(self, cam: Any) -> None:
        from picamera2 import MappedArray

        main = cam.camera_config["main"]
        width, height = main["size"]
        stride = main["stride"]
        while not self._halted():
            request = cam.capture_request(wait=False).get_result(timeout=self._read_timeout)
            try:
                completed_at = time.monotonic()
                metadata = request.get_metadata()
                with MappedArray(request, "main") as mapped:
                    frame = yuv420_frame(mapped.array, width, height, stride)
            finally:
                request.release()
            self._deliver(frame, capture_time(metadata, completed_at))

    def _close(self, cam: Any) -> None:
        try:
            cam.stop()
        finally:
            cam.close()

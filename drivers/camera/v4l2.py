"""V4L2 cameras (USB webcams and the like) through PyAV's ``v4l2`` input.

A capture thread owns the device (see :class:`~drivers.camera.threaded.ThreadedCamera`):
it decodes frames, converts them to yuv420p at the configured size where the device
delivers something else (MJPEG, YUYV), and hands the newest to the reader. A device that
goes away (unplugged, or silent for ``read_timeout``) is reported with ``device-lost``,
reopened with backoff and reported again with ``device-restored``.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Sequence

import av
import av.container

from drivers.base import Emit, null_emit
from drivers.camera.devices import describe_video_nodes, holders_of
from drivers.camera.threaded import BACKOFF, ThreadedCamera
from drivers.errors import DeviceBusy, DeviceError, DeviceNotFound

log = logging.getLogger(__name__)

Opener = Callable[[], av.container.InputContainer]


class V4L2Camera(ThreadedCamera[av.container.InputContainer]):
    """A :class:`~drivers.camera.base.VideoSource` on a V4L2 device.

    ``opener`` replaces the device opening (it must return an input container with a video
    stream); by default the device is opened with ``av.open(device, format="v4l2", ...)``
    asking for the configured size, rate and (if set) ``input_format``.
    """

    kind = "v4l2 camera"

    def __init__(self, device: str = "/dev/video0", width: int = 640, height: int = 480,
                 fps: int = 30, *, input_format: str = "", emit: Emit = null_emit,
                 opener: Opener | None = None, read_timeout: float = 3.0,
                 backoff: Sequence[float] = BACKOFF) -> None:
        super().__init__(device, width, height, fps, emit=emit, read_timeout=read_timeout,
                         backoff=backoff)
        self.input_format = input_format
        self._opener = opener

    def _open_device(self) -> av.container.InputContainer:
        if self._opener is not None:
            return self._opener()
        if not os.path.exists(self.device):
            raise DeviceNotFound(f"camera {self.device} not found; {describe_video_nodes()}")
        options = {"video_size": f"{self.width}x{self.height}", "framerate": str(self.fps)}
        if self.input_format:
            options["input_format"] = self.input_format
        return av.open(self.device, format="v4l2", options=options,
                       timeout=(self._read_timeout, self._read_timeout))

    def _open(self) -> av.container.InputContainer:
        """Open the device, turning the ways that fails into the driver errors."""
        try:
            container = self._open_device()
        except DeviceError:
            raise
        except OSError as exc:
            raise self._device_error(exc) from exc
        except av.error.FFmpegError as exc:  # not an OSError: bad option, no such format
            raise DeviceError(f"camera {self.device}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise DeviceError(f"camera {self.device}: no video stream")
        return container

    def _device_error(self, exc: OSError) -> DeviceError:
        code = exc.errno
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            return DeviceNotFound(f"camera {self.device} not found ({exc.strerror}); "
                                  f"{describe_video_nodes()}")
        if code == errno.EBUSY:
            holders = holders_of(self.device)
            held = f" (held by {', '.join(holders)})" if holders else ""
            return DeviceBusy(f"camera {self.device} is busy{held}")
        if code in (errno.EACCES, errno.EPERM):
            return DeviceError(f"camera {self.device}: permission denied "
                               "(is the service user in the 'video' group?)")
        if code in (errno.ENOTTY, errno.EINVAL):
            return DeviceError(f"camera {self.device} is not a V4L2 capture device "
                               f"or refuses {self.width}x{self.height}@{self.fps}: {exc}")
        return DeviceError(f"camera {self.device} cannot be opened: {exc}")

    def _pump(self, container: av.container.InputContainer) -> None:
        for frame in container.decode(container.streams.video[0]):
            if self._halted():
                return
            self._deliver(frame, time.monotonic())

    def _close(self, container: av.container.InputContainer) -> None:
        container.close()

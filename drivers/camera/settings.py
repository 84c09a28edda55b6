"""What opens the camera: :class:`CameraSettings`.

The appliance builds it from ``[video]`` and ``[sim]`` of its config
(``device/settings.py``); the drivers read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CameraSettings:
    """The camera to open and the picture it gives."""

    #: ``auto`` (sim with ``--sim``, else picamera2 when libcamera finds a camera, else
    #: V4L2), ``picamera2``, ``v4l2`` or ``sim``
    backend: Literal["auto", "picamera2", "v4l2", "sim"]
    #: the V4L2 device path
    device: str
    #: the V4L2 pixel format asked for (empty: the driver's choice)
    input_format: str
    width: int
    height: int
    fps: int
    #: the sim camera's source
    sim_pattern: str

"""Camera mirror and rotation, for boxes mounted sideways or upside down.

:class:`OrientedCamera` wraps a :class:`~drivers.camera.base.VideoSource` and turns
every frame as the :class:`OrientationControl` says at that moment, so a change applies
from the next frame. A quarter turn swaps width and height; the shared encoder reopens
at the new size by itself (a keyframe).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from drivers.base import Emit, null_emit
from drivers.camera.base import CapturedFrame, VideoSource

if TYPE_CHECKING:
    import av  # imported where a frame or codec is used: an idle box never loads PyAV

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Orientation:
    #: left and right swapped (as a mirror shows it)
    mirror: bool = False
    #: clockwise, in degrees: 0, 90, 180 or 270
    rotate: int = 0

    def __post_init__(self) -> None:
        if self.rotate not in ROTATIONS:
            raise ValueError(f"rotate must be one of {ROTATIONS}, got {self.rotate!r}")

    @property
    def identity(self) -> bool:
        return not self.mirror and self.rotate == 0

    def to_dict(self) -> dict[str, Any]:
        return {"mirror": self.mirror, "rotate": self.rotate}


class OrientationControl:
    """The orientation in effect; :meth:`set` changes it and emits ``camera-orientation``."""

    def __init__(self, initial: Orientation, emit: Emit = null_emit) -> None:
        self.current = initial
        self._emit = emit

    def __repr__(self) -> str:
        return f"<OrientationControl {self.current}>"

    def set(self, mirror: bool | None = None, rotate: int | None = None) -> Orientation:
        new = replace(self.current,
                      mirror=self.current.mirror if mirror is None else mirror,
                      rotate=self.current.rotate if rotate is None else rotate)
        if new != self.current:
            log.info("camera orientation %s -> %s", self.current, new)
            self.current = new
            self._emit("camera-orientation", new.to_dict())
        return new


def orient_frame(frame: av.VideoFrame, orientation: Orientation) -> av.VideoFrame:
    """``frame`` mirrored and rotated (a new yuv420p frame; the same one when nothing
    is to be done)."""
    import av

    if orientation.identity:
        return frame
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    w, h = frame.width, frame.height
    planes = frame.to_ndarray()  # Y (h rows), then U and V (h/4 rows of w each)
    y = planes[:h]
    u = planes[h:h + h // 4].reshape(h // 2, w // 2)
    v = planes[h + h // 4:].reshape(h // 2, w // 2)
    turns = -(orientation.rotate // 90)  # np.rot90 turns counter-clockwise

    def turn(plane: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if orientation.mirror:
            plane = plane[:, ::-1]
        return np.rot90(plane, turns) if turns else plane

    y2, u2, v2 = turn(y), turn(u), turn(v)
    width = y2.shape[1]
    out = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(np.concatenate([y2, u2.reshape(-1, width), v2.reshape(-1, width)])),
        format="yuv420p")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


class OrientedCamera:
    """A :class:`VideoSource` whose frames are turned as ``control`` says."""

    def __init__(self, camera: VideoSource, control: OrientationControl) -> None:
        self.camera = camera
        self.control = control

    def __repr__(self) -> str:
        return f"<OrientedCamera {self.camera!r} {self.control.current}>"

    @property
    def width(self) -> int:
        quarter = self.control.current.rotate in (90, 270)
        return self.camera.height if quarter else self.camera.width

    @property
    def height(self) -> int:
        quarter = self.control.current.rotate in (90, 270)
        return self.camera.width if quarter else self.camera.height

    @property
    def fps(self) -> int:
        return self.camera.fps

    async def start(self) -> None:
        await self.camera.start()

    async def read(self) -> CapturedFrame:
        return self._oriented(await self.camera.read())

    @property
    def reads_in_thread(self) -> bool:
        return bool(getattr(self.camera, "reads_in_thread", False))

    def read_sync(self, timeout: float) -> CapturedFrame | None:
        """:meth:`read` from a thread (only when the camera's ``reads_in_thread``)."""
        captured: CapturedFrame | None = self.camera.read_sync(timeout)  # type: ignore[attr-defined]
        return None if captured is None else self._oriented(captured)

    def _oriented(self, captured: CapturedFrame) -> CapturedFrame:
        orientation = self.control.current
        if orientation.identity:
            return captured
        return CapturedFrame(orient_frame(captured.frame, orientation), captured.index,
                             captured.captured_at)

    @property
    def stats(self) -> dict[str, int]:
        return self.camera.stats

    async def stop(self) -> None:
        await self.camera.stop()

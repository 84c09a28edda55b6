"""The camera interface: latest-frame semantics, frames as ``av.VideoFrame``.

Every backend stamps its frames the same way: ``time_base`` is :data:`TIME_BASE`
(1/90000, the RTP video clock) and ``pts`` is the capture time since the camera started,
in that time base (see :func:`pts_for`). ``CapturedFrame.captured_at`` is the capture
instant on ``time.monotonic()``, the clock the audio frames use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import av


#: The time base of every camera frame's ``pts``: the 90 kHz RTP video clock.
TIME_BASE = Fraction(1, 90_000)


def pts_for(seconds_since_start: float) -> int:
    """The ``pts`` (in :data:`TIME_BASE`) of a frame captured this long after the start."""
    return round(seconds_since_start * 90_000)


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """A camera frame (yuv420p where the backend can), its number and capture time."""

    frame: av.VideoFrame
    index: int
    captured_at: float


@runtime_checkable
class VideoSource(Protocol):
    width: int
    height: int
    fps: int

    async def start(self) -> None: ...

    async def read(self) -> CapturedFrame:
        """The newest frame not yet returned; waits for one. Older unread frames are skipped."""
        ...

    @property
    def stats(self) -> dict[str, int]:
        """Counters: frames captured, skipped, reopens."""
        ...

    async def stop(self) -> None: ...

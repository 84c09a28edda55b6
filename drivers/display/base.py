"""The screen a room is shown on: the :class:`Display` interface every backend implements.

A display takes whole canvases in one pixel format, ``bgra`` (4 bytes a pixel: blue,
green, red, unused), which is DRM's ``XRGB8888`` on a little-endian machine: the KMS
backend copies rows into its scan-out buffer as they are, and PyAV converts it to and
from any other format in C. :meth:`Display.present` is blocking and is called from one
worker thread at a time; it copies only the rectangles that changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from drivers.errors import DeviceError, EdgeroomError
from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Canvas = npt.NDArray[np.uint8]
else:
    np = lazy_module("numpy", globals(), "np")

#: Channels of a canvas pixel, in memory order.
CHANNELS = 4
PIXEL_FORMAT = "bgra"



class Rect(NamedTuple):
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return max(0, self.w) * max(0, self.h)


class DisplayError(DeviceError):
    """The screen could not be opened or driven."""


class BadResolution(EdgeroomError, ValueError):
    """A resolution setting that is neither ``auto`` nor ``WIDTHxHEIGHT``."""


_RESOLUTION = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def parse_resolution(text: str) -> tuple[int, int] | None:
    """``"1280x720"`` -> (1280, 720); ``"auto"`` -> None (the screen's preferred mode)."""
    if text == "auto":
        return None
    match = _RESOLUTION.match(text)
    if match is None:
        raise BadResolution(f'resolution must be "auto" or WIDTHxHEIGHT (1280x720), '
                            f"got {text!r:.40}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (64 <= width <= 7680 and 64 <= height <= 4320) or width % 2 or height % 2:
        raise BadResolution(f"resolution {text}: width 64-7680 and height 64-4320, "
                            f"both even")
    return width, height


def new_canvas(width: int, height: int) -> Canvas:
    """An all-black canvas (the unused byte is 255, so a viewer taking it for alpha sees
    an opaque picture)."""
    canvas = np.zeros((height, width, CHANNELS), dtype=np.uint8)
    canvas[..., 3] = 255
    return canvas


class Display(Protocol):
    """A screen: ``width`` x ``height`` pixels, refreshed ``refresh_hz`` times a second."""

    name: str
    width: int
    height: int
    refresh_hz: float

    def open(self) -> None:
        """Take the screen (blocking; raises :class:`DisplayError`)."""
        ...

    def present(self, canvas: Canvas, dirty: Sequence[Rect]) -> None:
        """Show ``canvas``; only the ``dirty`` rectangles changed since the last call
        (blocking, from one thread at a time)."""
        ...

    def close(self) -> None:
        """Give the screen back (idempotent)."""
        ...

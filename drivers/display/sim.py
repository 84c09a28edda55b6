"""The sim screen: keeps what would be on the screen, for the page and for tests.

:meth:`SimDisplay.frame` is a copy of the screen as last presented (a ``bgra`` array);
:meth:`SimDisplay.jpeg` encodes it on request (in the caller's thread, at most once per
presented frame), which the page shows as a live image.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import numpy as np

from drivers.display.base import PIXEL_FORMAT, Rect, new_canvas

if TYPE_CHECKING:
    from drivers.display.base import Canvas

log = logging.getLogger(__name__)

DEFAULT_SIZE = (1280, 720)


class SimDisplay:
    name = "sim"

    def __init__(self, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1],
                 refresh_hz: float = 30.0, jpeg_quality: int = 4) -> None:
        self.width = width
        self.height = height
        self.refresh_hz = refresh_hz
        self.jpeg_quality = jpeg_quality  # mjpeg qscale: 2 (best) .. 31
        self._screen = new_canvas(width, height)
        self._lock = threading.Lock()
        self._jpeg: tuple[int, bytes] | None = None
        self.presents = 0
        self.last_present: float | None = None
        self.opened = False

    def __repr__(self) -> str:
        return (f"<SimDisplay {self.width}x{self.height}@{self.refresh_hz:g} "
                f"presents={self.presents}>")

    def open(self) -> None:
        self.opened = True

    def present(self, canvas: Canvas, dirty: Sequence[Rect]) -> None:
        with self._lock:
            for x, y, w, h in dirty:
                self._screen[y:y + h, x:x + w] = canvas[y:y + h, x:x + w]
            self.presents += 1
            self.last_present = time.monotonic()

    def close(self) -> None:
        self.opened = False

    def frame(self) -> tuple[int, Canvas]:
        """(presents so far, a copy of the screen)."""
        with self._lock:
            return self.presents, self._screen.copy()

    def jpeg(self) -> bytes:
        """The screen as a JPEG (blocking: run it in a thread)."""
        with self._lock:
            cached = self._jpeg
            if cached is not None and cached[0] == self.presents:
                return cached[1]
            number, screen = self.presents, self._screen.copy()
        data = encode_jpeg(screen, self.jpeg_quality)
        with self._lock:
            self._jpeg = (number, data)
        return data


def encode_jpeg(screen: Canvas, quality: int) -> bytes:
    """A ``bgra`` array as a baseline JPEG (libswscale converts, libavcodec encodes)."""
    height, width = screen.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(screen), format=PIXEL_FORMAT)
    image = frame.reformat(format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 30)
    codec.options = {"qmin": str(quality), "qmax": str(quality)}
    packets = codec.encode(image) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)

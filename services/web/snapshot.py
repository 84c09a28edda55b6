"""A camera snapshot provider for the page's preview (``app.extras["snapshot"]``).

Whoever owns the camera hands it frames with :meth:`JpegSnapshot.offer` (cheap: it keeps
a reference to the latest one); a JPEG is encoded only when the page asks, in a thread,
at most once per frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import av  # imported where a frame or codec is used: an idle box never loads PyAV


log = logging.getLogger(__name__)

MAX_WIDTH = 640


class JpegSnapshot:
    def __init__(self, quality: int = 5, max_width: int = MAX_WIDTH) -> None:
        self.quality = quality  # mjpeg qscale: 2 (best) .. 31
        self.max_width = max_width
        self._frame: av.VideoFrame | None = None
        self._frame_id = 0
        self._cached: tuple[int, bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<JpegSnapshot frames={self._frame_id}>"

    def offer(self, frame: av.VideoFrame) -> None:
        """The camera's latest frame (any thread)."""
        with self._lock:
            self._frame = frame
            self._frame_id += 1

    def clear(self) -> None:
        """The camera stopped: no preview until the next frame."""
        with self._lock:
            self._frame = None

    async def snapshot_jpeg(self) -> bytes | None:
        with self._lock:
            frame, frame_id, cached = self._frame, self._frame_id, self._cached
        if frame is None:
            return None
        if cached is not None and cached[0] == frame_id:
            return cached[1]
        jpeg = await asyncio.to_thread(self._encode, frame)
        with self._lock:
            self._cached = (frame_id, jpeg)
        return jpeg

    def _encode(self, frame: av.VideoFrame) -> bytes:
        import av

        width, height = frame.width, frame.height
        if width > self.max_width:
            height = max(2, round(height * self.max_width / width / 2) * 2)
            width = self.max_width
        image = frame.reformat(width=width, height=height, format="yuvj420p")
        codec = av.CodecContext.create("mjpeg", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuvj420p"
        codec.time_base = Fraction(1, 30)
        codec.options = {"qmin": str(self.quality), "qmax": str(self.quality)}
        packets = codec.encode(image) + codec.encode(None)
        return b"".join(bytes(p) for p in packets)

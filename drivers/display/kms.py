"""The screen on the board: DRM/KMS through ``pykms`` (Debian/Raspberry Pi OS
``python3-kms++``, the binding picamera2's DRM preview uses).

Two dumb ``XRGB8888`` frame buffers at the mode's size, shown on the connector's primary
plane. A present copies the changed rectangles into the buffer not on screen (and the
rectangles the previous present changed, which that buffer has not seen yet), then flips
to it with one atomic commit that waits for the vertical blank: no tearing, and never
more presents than the screen shows. Drivers without atomic modesetting get a legacy
mode set and draw into the one buffer shown.

``pykms`` is imported only here, and this module only when the backend is chosen:
:func:`drivers.display.available` tells whether it imports.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.display.base import CHANNELS, DisplayError, Rect

if TYPE_CHECKING:
    from drivers.display.base import Canvas

log = logging.getLogger(__name__)

FOURCC = "XR24"  # XRGB8888: the canvas' bgra bytes as they are


def _import_pykms() -> Any:
    try:
        import pykms
    except ImportError as exc:
        raise DisplayError(f"the KMS display needs pykms (python3-kms++): {exc}") from exc
    return pykms


class _Buffer:
    """One dumb frame buffer, mapped, seen as a (height, width, 4) array."""

    def __init__(self, pykms: Any, card: Any, width: int, height: int) -> None:
        self.fb = pykms.DumbFramebuffer(card, width, height, FOURCC)
        stride = int(self.fb.stride(0))
        self.map = mmap.mmap(self.fb.fd(0), stride * height, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        rows = np.frombuffer(self.map, dtype=np.uint8).reshape(height, stride)
        self.pixels = rows[:, :width * CHANNELS].reshape(height, width, CHANNELS)
        self.pixels[...] = 0

    def close(self) -> None:
        del self.pixels
        self.map.close()


class KmsDisplay:
    name = "kms"

    def __init__(self, size: tuple[int, int] | None = None, card: str | None = None) -> None:
        self._wanted = size
        self._card_path = card
        self.width, self.height = size or (0, 0)
        self.refresh_hz = 60.0
        self._pykms: Any = None
        self._card: Any = None
        self._crtc: Any = None
        self._plane: Any = None
        self._buffers: list[_Buffer] = []
        self._front = 0
        self._last_dirty: list[Rect] = []
        self.connector = ""

    def __repr__(self) -> str:
        return (f"<KmsDisplay {self.connector or '-'} {self.width}x{self.height}"
                f"@{self.refresh_hz:g}>")

    def open(self) -> None:
        pykms = self._pykms = _import_pykms()
        try:
            self._card = pykms.Card(self._card_path) if self._card_path else pykms.Card()
            resman = pykms.ResourceManager(self._card)
            conn = resman.reserve_connector()
            if conn is None or not conn.connected():
                raise DisplayError("no screen is connected (no DRM connector is connected)")
            mode = self._mode(conn)
            self.width, self.height = int(mode.hdisplay), int(mode.vdisplay)
            self.refresh_hz = float(mode.vrefresh or 60)
            self.connector = str(conn.fullname)
            self._crtc = resman.reserve_crtc(conn)
            self._plane = resman.reserve_primary_plane(self._crtc, pykms.PixelFormat.XRGB8888)
            if self._crtc is None or self._plane is None:
                raise DisplayError(f"{self.connector}: no free CRTC or plane for XRGB8888")
            count = 2 if self._card.has_atomic else 1
            self._buffers = [_Buffer(pykms, self._card, self.width, self.height)
                             for _ in range(count)]
            self._modeset(conn, mode)
        except DisplayError:
            self.close()
            raise
        except (OSError, RuntimeError, ValueError) as exc:
            self.close()
            raise DisplayError(f"KMS display: {exc}") from exc
        log.info("display: %r", self)

    def _mode(self, conn: Any) -> Any:
        if self._wanted is None:
            return conn.get_default_mode()
        width, height = self._wanted
        for mode in conn.get_modes():
            if (int(mode.hdisplay), int(mode.vdisplay)) == (width, height):
                return mode
        shown = sorted({f"{m.hdisplay}x{m.vdisplay}" for m in conn.get_modes()})
        raise DisplayError(f"the screen has no {width}x{height} mode "
                           f"(it has: {', '.join(shown)})")

    def _plane_props(self, buffer: _Buffer) -> dict[str, int]:
        return {"FB_ID": buffer.fb.id, "CRTC_ID": self._crtc.id,
                "SRC_X": 0, "SRC_Y": 0, "SRC_W": self.width << 16, "SRC_H": self.height << 16,
                "CRTC_X": 0, "CRTC_Y": 0, "CRTC_W": self.width, "CRTC_H": self.height}

    def _modeset(self, conn: Any, mode: Any) -> None:
        first = self._buffers[0]
        if not self._card.has_atomic:
            self._crtc.set_mode(conn, first.fb, mode)
            return
        req = self._pykms.AtomicReq(self._card)
        blob = mode.to_blob(self._card)
        req.add(conn, "CRTC_ID", self._crtc.id)
        req.add(self._crtc, {"ACTIVE": 1, "MODE_ID": blob.id})
        req.add(self._plane, self._plane_props(first))
        req.commit_sync(allow_modeset=True)

    def present(self, canvas: Canvas, dirty: Sequence[Rect]) -> None:
        if not self._buffers:
            raise DisplayError("the KMS display is not open")
        if len(self._buffers) == 1:
            target = self._buffers[0]
            for x, y, w, h in dirty:
                target.pixels[y:y + h, x:x + w] = canvas[y:y + h, x:x + w]
            return
        back = 1 - self._front
        target = self._buffers[back]
        for x, y, w, h in (*self._last_dirty, *dirty):
            target.pixels[y:y + h, x:x + w] = canvas[y:y + h, x:x + w]
        req = self._pykms.AtomicReq(self._card)
        req.add(self._plane, {"FB_ID": target.fb.id})
        req.commit_sync()  # returns after the flip, at the vertical blank
        self._front = back
        self._last_dirty = list(dirty)

    def close(self) -> None:
        for buffer in self._buffers:
            buffer.close()
        self._buffers = []
        self._plane = self._crtc = self._card = None

"""A machine-readable strip that carries a frame's number and capture time in its pixels.

The sim camera draws it into the top rows of every frame; whoever receives the video
(after encoding, the network and decoding) reads it back with :func:`decode_strip` to
count lost frames and measure glass-to-glass latency.

Layout: two rows of :data:`CELLS_PER_ROW` cells, each cell one bit, drawn in luma only
(white 235 = 1, black 16 = 0, chroma neutral). 80 bits, most significant first:

====== ===== ==============================================================
bits   field meaning
====== ===== ==============================================================
0-7    0xB2  start marker (also the black and white reference levels)
8-39   n     frame number, unsigned 32-bit
40-71  stamp capture time: low 32 bits of ``time.monotonic()`` in milliseconds
72-79  crc   CRC-8 (polynomial 0x07) of the eight bytes of ``n`` and ``stamp``
====== ===== ==============================================================

A cell is ``width // 40`` pixels wide (rounded down to even, at least 4) and as tall,
at most 16: at 640x480 each cell is exactly one 16x16 macroblock, so every transform
block inside it is flat and costs the encoder almost nothing, and the large step between
the two levels survives coarse quantisation. The decoder averages the inner half of each
cell, sets its threshold from the marker's own black and white cells, and rejects the
strip unless both the marker and the CRC match. No scaling may happen between drawing
and decoding (the decoder derives the layout from the frame width).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.camera.planes import plane_rows

if TYPE_CHECKING:
    import av

from drivers.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    np = lazy_module("numpy", globals(), "np")

CELLS_PER_ROW = 40
ROWS = 2
BITS = CELLS_PER_ROW * ROWS
MARKER = 0xB2
WHITE = 235
BLACK = 16
MIN_WIDTH = CELLS_PER_ROW * 4
#: The smallest gap between the marker's white and black cells that is trusted.
MIN_CONTRAST = 40

_MARKER = [bool(MARKER >> (7 - i) & 1) for i in range(8)]  # its bits, most significant first


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def stamp_ms(monotonic: float) -> int:
    """The strip's time field for a ``time.monotonic()`` value."""
    return int(monotonic * 1000.0) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class StripInfo:
    """What a strip carries: the frame number and the capture stamp (monotonic ms, 32 bits)."""

    frame_number: int
    stamp_ms: int

    def age_ms(self, now: float | None = None) -> int:
        """Milliseconds from capture to ``now`` (``time.monotonic()``, default: this instant).

        Meaningful only on the machine (clock) that captured the frame; wraps every 49 days,
        which the modular difference absorbs.
        """
        current = stamp_ms(time.monotonic() if now is None else now)
        return (current - self.stamp_ms) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class StripLayout:
    cell_width: int
    cell_height: int

    @property
    def height(self) -> int:
        return self.cell_height * ROWS

    @property
    def width(self) -> int:
        return self.cell_width * CELLS_PER_ROW


def layout_for(width: int, height: int) -> StripLayout | None:
    """The strip geometry for a frame size, or None when the frame is too small for one."""
    cell_w = (width // CELLS_PER_ROW) & ~1
    if cell_w < 4:
        return None
    cell_h = min(cell_w, 16)
    if height < cell_h * ROWS:
        return None
    return StripLayout(cell_w, cell_h)


def strip_bits(frame_number: int, stamp: int) -> npt.NDArray[np.uint8]:
    """The 80 bits (as 0/1 bytes, shaped rows x cells) for one frame."""
    body = struct.pack(">II", frame_number & 0xFFFFFFFF, stamp & 0xFFFFFFFF)
    raw = bytes([MARKER]) + body + bytes([crc8(body)])
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    return bits.reshape(ROWS, CELLS_PER_ROW)


def draw_strip(luma: npt.NDArray[np.uint8], layout: StripLayout,
               frame_number: int, stamp: int) -> None:
    """Draw the strip into the top rows of a luma plane (a writable 2-D view)."""
    levels = np.where(strip_bits(frame_number, stamp), WHITE, BLACK).astype(np.uint8)
    row_pixels = np.repeat(levels, layout.cell_width, axis=1)  # ROWS x strip width
    ch = layout.cell_height
    for r in range(ROWS):
        luma[r * ch:(r + 1) * ch, :layout.width] = row_pixels[r]


def _luma_of(frame: Any) -> npt.NDArray[np.uint8]:
    """A 2-D luma view of an ``av.VideoFrame`` or a numpy image (gray, yuv420p or RGB)."""
    if isinstance(frame, np.ndarray):
        if frame.ndim == 2:
            # gray, or yuv420p as (h * 3 / 2, w): the strip lies in the top rows either way
            return frame.astype(np.uint8, copy=False)
        if frame.ndim == 3 and frame.shape[2] >= 3:
            rgb = frame[..., :3].astype(np.float32)
            return (16 + 0.257 * rgb[..., 0] + 0.504 * rgb[..., 1]
                    + 0.098 * rgb[..., 2]).astype(np.uint8)
        raise ValueError(f"cannot read a strip from an array of shape {frame.shape}")
    name = frame.format.name
    if name.startswith(("yuv", "yuvj", "nv12", "nv21", "gray")) and not name.endswith(("le", "be")):
        return plane_rows(frame.planes[0], frame.height, frame.width)
    gray: npt.NDArray[np.uint8] = frame.to_ndarray(format="gray")
    return gray


def decode_strip(frame: av.VideoFrame | npt.NDArray[Any]) -> StripInfo | None:
    """Read the strip from a decoded frame; None when there is none or it is damaged."""
    luma = _luma_of(frame)
    height, width = luma.shape
    layout = layout_for(width, height)
    if layout is None:
        return None
    cw, ch = layout.cell_width, layout.cell_height
    # the inner half of every cell: clear of deblocking and ringing at the cell edges
    y0, y1 = ch // 4, ch - ch // 4
    x0, x1 = cw // 4, cw - cw // 4
    region = luma[: layout.height, : layout.width].reshape(ROWS, ch, CELLS_PER_ROW, cw)
    means = region[:, y0:y1, :, x0:x1].mean(axis=(1, 3), dtype=np.float32).reshape(-1)
    marker = means[:8]
    marker_bits = np.array(_MARKER)
    white = float(marker[marker_bits].mean())
    black = float(marker[~marker_bits].mean())
    if white - black < MIN_CONTRAST:
        return None
    bits = means > (white + black) / 2.0
    if not np.array_equal(bits[:8], marker_bits):
        return None
    raw = np.packbits(bits.astype(np.uint8)).tobytes()
    body = raw[1:9]
    if crc8(body) != raw[9]:
        return None
    number, stamp = struct.unpack(">II", body)
    return StripInfo(number, stamp)

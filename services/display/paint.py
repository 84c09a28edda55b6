"""Drawing a tile: its picture (or the member's name where there is none), the name
label, the talking ring, the raised hand and the muted icon.

Everything draws into the screen's ``bgra`` canvas with numpy slices. Text and icons are
rendered once with Pillow and kept (by text and size), so a redraw of a tile costs a few
small copies on top of its picture.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from drivers.display.base import Rect

if TYPE_CHECKING:
    from drivers.display.base import Canvas

log = logging.getLogger(__name__)

Pixels = npt.NDArray[np.uint8]
_LITTLE = sys.byteorder == "little"

# bgra
BACKGROUND = (16, 16, 16, 255)
TILE = (48, 40, 36, 255)
LABEL = (0, 0, 0, 255)
TALKING = (113, 204, 46, 255)  # green
HAND = (15, 196, 241, 255)  # amber
MUTED = (60, 76, 231, 255)  # red
WHITE = (255, 255, 255, 255)


@dataclass(frozen=True, slots=True)
class TileView:
    """What one tile shows about its member."""

    member_id: str
    name: str
    talking: bool = False
    hand_raised: bool = False
    muted: bool = False
    #: The member sends video and it is not paused (else: their name, large).
    video: bool = False


def fill(canvas: Canvas, rect: Rect, color: tuple[int, int, int, int]) -> None:
    """One colour over ``rect``, written as 32-bit words (numpy broadcasting a 4-byte
    tuple over a screen costs twenty times more)."""
    x, y, w, h = rect
    b, g, r, a = color
    words = canvas.view(np.uint32)[..., 0]  # the canvas is C-contiguous (h, w, 4)
    words[y:y + h, x:x + w] = np.uint32(b | g << 8 | r << 16 | a << 24) if _LITTLE else \
        np.uint32(a | r << 8 | g << 16 | b << 24)


def fill_around(canvas: Canvas, outer: Rect, inner: Rect,
                color: tuple[int, int, int, int]) -> None:
    """Fill what of ``outer`` lies outside ``inner`` (the bars beside a picture)."""
    x, y, w, h = outer
    ix, iy, iw, ih = inner
    for bar in (Rect(x, y, w, iy - y), Rect(x, iy + ih, w, y + h - iy - ih),
                Rect(x, iy, ix - x, ih), Rect(ix + iw, iy, x + w - ix - iw, ih)):
        if bar.w > 0 and bar.h > 0:
            fill(canvas, bar, color)


def blit(canvas: Canvas, rect: Rect, pixels: Pixels) -> None:
    """Copy ``pixels`` (h, w, 4) to ``rect``'s corner, clipped to the rect and canvas."""
    x, y, w, h = rect
    h = min(h, pixels.shape[0], canvas.shape[0] - y)
    w = min(w, pixels.shape[1], canvas.shape[1] - x)
    if w > 0 and h > 0:
        canvas[y:y + h, x:x + w] = pixels[:h, :w]


def blend(canvas: Canvas, x: int, y: int, rgba: Pixels) -> None:
    """Put a small straight-alpha ``bgra`` image at (x, y) over what is there."""
    h = min(rgba.shape[0], canvas.shape[0] - y)
    w = min(rgba.shape[1], canvas.shape[1] - x)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        return
    src = rgba[:h, :w].astype(np.uint16)
    alpha = src[..., 3:4]
    dst = canvas[y:y + h, x:x + w]
    mixed = (src[..., :3] * alpha + dst[..., :3].astype(np.uint16) * (255 - alpha)) // 255
    dst[..., :3] = mixed.astype(np.uint8)


def ring(canvas: Canvas, rect: Rect, color: tuple[int, int, int, int], width: int) -> None:
    x, y, w, h = rect
    t = max(1, min(width, w // 4, h // 4))
    for side in (Rect(x, y, w, t), Rect(x, y + h - t, w, t), Rect(x, y, t, h),
                 Rect(x + w - t, y, t, h)):
        fill(canvas, side, color)


def _to_bgra(image: Image.Image) -> Pixels:
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    return np.ascontiguousarray(rgba[..., [2, 1, 0, 3]])


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=256)
def text_image(text: str, size: int, max_width: int,
               background: tuple[int, int, int, int] = LABEL) -> Pixels:
    """``text`` in white on an opaque box, cut short with an ellipsis to ``max_width``."""
    font = _font(size)
    pad = max(2, size // 4)
    shown = text
    while True:
        left, _, right, _ = font.getbbox(shown)
        if right - left + 2 * pad <= max_width or len(shown) <= 1:
            break
        shown = shown[:-2] + "…"
    width = int(max(1, min(max_width, right - left + 2 * pad)))
    height = size + 2 * pad
    r, g, b = background[2], background[1], background[0]
    image = Image.new("RGBA", (width, height), (r, g, b, background[3]))
    ImageDraw.Draw(image).text((pad - left, pad), shown, font=font, fill=(255, 255, 255, 255))
    return _to_bgra(image)


@lru_cache(maxsize=32)
def hand_icon(size: int) -> Pixels:
    """A raised hand: palm, four fingers and a thumb, on a round amber badge."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    b, g, r, a = HAND
    draw.ellipse((0, 0, size - 1, size - 1), fill=(r, g, b, a))
    u = size / 16
    white = (255, 255, 255, 255)
    draw.rounded_rectangle((5 * u, 7 * u, 11 * u, 13 * u), radius=u, fill=white)
    for i in range(4):
        x = 5 * u + i * 1.5 * u
        draw.rounded_rectangle((x, 3 * u, x + 1.1 * u, 8 * u), radius=0.5 * u, fill=white)
    draw.rounded_rectangle((3 * u, 8 * u, 5.5 * u, 9.5 * u), radius=0.5 * u, fill=white)
    return _to_bgra(image)


@lru_cache(maxsize=32)
def muted_icon(size: int) -> Pixels:
    """A microphone struck through, on a round red badge."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    b, g, r, a = MUTED
    draw.ellipse((0, 0, size - 1, size - 1), fill=(r, g, b, a))
    u = size / 16
    white = (255, 255, 255, 255)
    draw.rounded_rectangle((6.5 * u, 3 * u, 9.5 * u, 9.5 * u), radius=1.5 * u, fill=white)
    draw.arc((4.5 * u, 5 * u, 11.5 * u, 11 * u), 0, 180, fill=white, width=max(1, int(u)))
    draw.line((8 * u, 11 * u, 8 * u, 13 * u), fill=white, width=max(1, int(u)))
    draw.line((4 * u, 3.5 * u, 12 * u, 12.5 * u), fill=white, width=max(1, int(1.5 * u)))
    return _to_bgra(image)


def overlay_size(rect: Rect) -> int:
    """The text and icon size for a tile (in pixels)."""
    return max(12, min(28, rect.h // 12))


def draw_overlays(canvas: Canvas, rect: Rect, view: TileView) -> None:
    """The name label (with the muted icon before it), the hand, the talking ring."""
    size = overlay_size(rect)
    margin = max(2, size // 3)
    x = rect.x + margin
    label = text_image(view.name or view.member_id, size, max(8, rect.w - 3 * margin - size))
    y = rect.y + rect.h - margin - label.shape[0]
    if view.muted:
        icon = muted_icon(label.shape[0])
        blend(canvas, x, y, icon)
        x += icon.shape[1] + margin // 2
    blit(canvas, Rect(x, y, label.shape[1], label.shape[0]), label)
    if view.hand_raised:
        icon = hand_icon(size + size // 2)
        blend(canvas, rect.x + rect.w - margin - icon.shape[1], rect.y + margin, icon)
    if view.talking:
        ring(canvas, rect, TALKING, max(3, min(rect.w, rect.h) // 60))


def draw_placeholder(canvas: Canvas, rect: Rect, view: TileView) -> None:
    """A tile without a picture: the member's name, large, in the middle."""
    fill(canvas, rect, TILE)
    size = max(12, min(64, rect.h // 6))
    name = text_image(view.name or view.member_id, size, max(8, rect.w - 8), TILE)
    blit(canvas, Rect(rect.x + (rect.w - name.shape[1]) // 2,
                      rect.y + (rect.h - name.shape[0]) // 2, name.shape[1], name.shape[0]),
         name)

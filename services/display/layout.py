"""Where each member goes on the screen, for the three layouts.

``grid``
    Every shown member in equal tiles, as square a grid as fits (at most
    :data:`GRID_MAX` tiles; members past that are not shown, and not decoded).
``speaker``
    The focus (the pinned member, else the one who talked last) large on top, the
    others in a strip of at most :data:`STRIP_MAX` tiles below.
``single``
    The focus alone, on the whole screen.

Pure geometry: :func:`arrange` takes the ids in the order they are to be shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from drivers.display.base import Rect

Layout = Literal["grid", "speaker", "single"]
LAYOUTS: tuple[Layout, ...] = ("grid", "speaker", "single")
GRID_MAX = 16
STRIP_MAX = 6
#: The share of the screen's height the speaker layout gives its strip.
STRIP_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class TileSpec:
    member_id: str
    rect: Rect
    main: bool = False  # the large tile of the speaker and single layouts


def next_layout(current: Layout) -> Layout:
    return LAYOUTS[(LAYOUTS.index(current) + 1) % len(LAYOUTS)]


def _even(value: float) -> int:
    return max(2, int(value) & ~1)


def _row(ids: list[str], x0: int, y0: int, width: int, height: int, cols: int,
         ) -> list[TileSpec]:
    """``ids`` left to right in ``cols`` equal columns of one row."""
    out = []
    for i, member_id in enumerate(ids):
        x = x0 + (width * i) // cols
        w = x0 + (width * (i + 1)) // cols - x
        out.append(TileSpec(member_id, Rect(x & ~1, y0, _even(w), _even(height))))
    return out


def grid(ids: list[str], width: int, height: int) -> list[TileSpec]:
    shown = ids[:GRID_MAX]
    if not shown:
        return []
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    out: list[TileSpec] = []
    for r in range(rows):
        row_ids = shown[r * cols:(r + 1) * cols]
        y = (height * r) // rows
        h = (height * (r + 1)) // rows - y
        # a last row with fewer tiles keeps the tile width, centred
        row_width = width * len(row_ids) // cols
        x0 = (width - row_width) // 2
        out += _row(row_ids, x0, y & ~1, row_width, h, len(row_ids))
    return out


def arrange(layout: Layout, ids: list[str], focus: str | None, width: int,
            height: int) -> list[TileSpec]:
    """The tiles of ``layout`` on a ``width`` x ``height`` screen.

    ``ids`` are the members to show, in order; ``focus`` is the member the speaker and
    single layouts put first (None or absent: the first of ``ids``).
    """
    if not ids:
        return []
    if focus not in ids:
        focus = ids[0]
    assert focus is not None
    if layout == "grid":
        return grid(ids, width, height)
    if layout == "single":
        return [TileSpec(focus, Rect(0, 0, width, height), main=True)]
    others = [i for i in ids if i != focus][:STRIP_MAX]
    if not others:
        return [TileSpec(focus, Rect(0, 0, width, height), main=True)]
    strip_h = _even(height * STRIP_SHARE)
    main_h = height - strip_h
    tiles = [TileSpec(focus, Rect(0, 0, width, main_h), main=True)]
    # the strip's tiles keep a 4:3 shape at most, centred
    cols = max(len(others), math.ceil(width / (strip_h * 4 / 3)))
    tile_w = width // cols
    row_width = tile_w * len(others)
    tiles += _row(others, (width - row_width) // 2, main_h, row_width, strip_h, len(others))
    return tiles


def fit(rect: Rect, src_w: int, src_h: int) -> Rect:
    """The largest rectangle of the source's shape inside ``rect``, centred (even sizes,
    as libswscale wants for 4:2:0 sources)."""
    if src_w <= 0 or src_h <= 0:
        return rect
    scale = min(rect.w / src_w, rect.h / src_h)
    w = min(rect.w, _even(round(src_w * scale)))
    h = min(rect.h, _even(round(src_h * scale)))
    return Rect(rect.x + (rect.w - w) // 2, rect.y + (rect.h - h) // 2, w, h)

"""RoomScreen: the room's members as tiles on a screen.

It is fed three things: the room (``members()`` and ``controls``, re-read whenever the
room changes: :meth:`RoomScreen.room_changed`), decoded remote video (the session's
remote-video consumer, :meth:`RoomScreen.on_video`) and, for the self-view, the shared
camera's frames (:meth:`RoomScreen.offer_self_frame`, from any thread).

Composition is cheap on purpose:

- Only members on screen are wanted (:meth:`RoomScreen.shows`): the session pauses the
  others' video at the server, and a frame of a member not on screen is dropped at once.
- A frame is scaled to the size of its tile and converted to the screen's pixel format in
  one libswscale call (PyAV ``reformat``), off the event loop; numpy copies it in place.
- The screen is redrawn only when something changed: a tile whose member sent a frame,
  or whose name, talking ring, hand or mute changed; a new arrangement redraws all.
  Redraws are never closer together than the screen's refresh (or ``max_fps``), so a
  redraw follows each member's own frame rate and frames arriving together share one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from drivers.base import Emit, hand_to_loop, null_emit
from drivers.display.base import Display, Rect, new_canvas
from services.display.layout import LAYOUTS, Layout, TileSpec, arrange, fit, next_layout
from services.display.paint import (
    BACKGROUND,
    TILE,
    TileView,
    blit,
    draw_overlays,
    draw_placeholder,
    fill,
    fill_around,
)
from services.display.settings import LOCAL, DisplaySettings
from services.room.api import Controls, Member

if TYPE_CHECKING:
    from drivers.display.base import Canvas

log = logging.getLogger(__name__)


class RoomView(Protocol):
    """What the screen reads of the room session."""

    def members(self) -> list[Member]: ...

    @property
    def controls(self) -> Controls: ...


@dataclass(frozen=True, slots=True)
class _Job:
    full: bool
    tiles: list[tuple[TileSpec, TileView, Any]]  # spec, view, a new frame or None
    live: frozenset[str]


def _layout(name: str) -> Layout:
    for layout in LAYOUTS:
        if layout == name:
            return layout
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} or next, got {name!r:.40}")


class RoomScreen:
    def __init__(self, display: Display, settings: DisplaySettings = DisplaySettings(),
                 emit: Emit = null_emit) -> None:
        self.display = display
        self.settings = settings
        self._emit = emit
        self.layout: Layout = settings.layout
        self.pinned: str | None = None
        self._room: RoomView | None = None
        self._tiles: list[TileSpec] = []
        self._views: dict[str, TileView] = {}
        self._talking: set[str] = set()
        self._last_talker: str | None = None
        self._local_talking = False
        self._self_video = False
        self._frames: dict[str, Any] = {}  # member id -> newest frame not yet drawn
        self._dirty: set[str] = set()
        self._full = True
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_at = 0.0
        # touched only by the render thread (one render at a time)
        self._canvas: Canvas | None = None
        self._pictures: dict[str, tuple[Rect, Rect, np.ndarray]] = {}
        #: Called when the set of members on screen changed (the session re-asks
        #: :meth:`shows` and pauses or resumes their video).
        self.on_shown_changed: Any = lambda: None
        self.renders = 0
        self.render_cpu_s = 0.0
        self.frames_shown: dict[str, int] = {}
        self.frames_offscreen = 0

    def __repr__(self) -> str:
        return (f"<RoomScreen {self.display.name} {self.layout} tiles={len(self._tiles)} "
                f"renders={self.renders}>")

    # -- inputs ---------------------------------------------------------------------------

    def attach(self, room: RoomView | None) -> None:
        """Show this room session (None: an empty screen)."""
        self._room = room
        self.room_changed()

    def room_event(self, name: str, data: dict[str, Any]) -> None:
        """A room event (the session's, from the event bus): re-read the room."""
        if name == "talking" and data.get("id") == LOCAL:
            self._local_talking = bool(data.get("talking"))
        self.room_changed()

    def room_changed(self) -> None:
        self._arrange()

    def on_video(self, member_id: str, frame: Any) -> None:
        """A decoded frame of a member's video (on the event loop)."""
        if member_id not in self._views or member_id == LOCAL:
            self.frames_offscreen += 1
            return
        self._frames[member_id] = frame
        self._dirty.add(member_id)
        self._wake.set()

    def offer_self_frame(self, frame: Any) -> None:
        """The shared camera's latest frame, or None when it stopped (any thread)."""
        if self.settings.self_view:
            hand_to_loop(self._loop, self._self_frame, frame)

    def _self_frame(self, frame: Any) -> None:
        video = frame is not None
        if video != self._self_video:
            self._self_video = video
            self._arrange()
        if video and LOCAL in self._views:
            self._frames[LOCAL] = frame
            self._dirty.add(LOCAL)
            self._wake.set()

    def shows(self, member_id: str) -> bool:
        """Whether ``member_id``'s video is on screen now."""
        return member_id in self._views

    # -- controls -------------------------------------------------------------------------

    def set_layout(self, layout: str) -> Layout:
        """``grid``, ``speaker``, ``single``, or ``next`` (the one after the current)."""
        new = next_layout(self.layout) if layout == "next" else _layout(layout)
        if new != self.layout:
            log.info("display layout: %s -> %s", self.layout, new)
            self.layout = new
            self._arrange()
            self._announce()
        return self.layout

    def pin(self, member_id: str | None) -> None:
        """Put ``member_id`` first (the single and speaker layouts show it large);
        None goes back to the member who talked last."""
        if member_id != self.pinned:
            self.pinned = member_id
            self._arrange()
            self._announce()

    def _announce(self) -> None:
        self._emit("display", {"layout": self.layout, "pinned": self.pinned,
                               "focus": self.focus})

    # -- arrangement ----------------------------------------------------------------------

    @property
    def focus(self) -> str | None:
        main = [t.member_id for t in self._tiles if t.main]
        return main[0] if main else None

    def _arrange(self) -> None:
        views: dict[str, TileView] = {}
        members = self._room.members() if self._room is not None else []
        talking = set()
        for m in members:
            video = m.has_video and not m.video_muted
            if m.talking:
                talking.add(m.id)
            if self.settings.hide_video_muted and not video:
                continue
            views[m.id] = TileView(m.id, m.display, m.talking, m.hand_raised,
                                   m.audio_muted or m.mic_off or m.locally_muted, video)
        for started in talking - self._talking:
            self._last_talker = started
        self._talking = talking
        if self.settings.self_view and self._room is not None:
            c = self._room.controls
            views[LOCAL] = TileView(LOCAL, self.settings.self_name, self._local_talking,
                                    c.hand_raised, not c.mic_enabled, self._self_video)
        focus = self.pinned if self.pinned in views else self._last_talker
        tiles = arrange(self.layout, list(views), focus, self.display.width,
                        self.display.height)
        shown = {t.member_id for t in tiles}
        views = {k: v for k, v in views.items() if k in shown}
        before = set(self._views)
        if [(t.member_id, t.rect) for t in tiles] != [(t.member_id, t.rect)
                                                      for t in self._tiles]:
            self._full = True
        else:
            self._dirty |= {k for k, v in views.items() if self._views.get(k) != v}
        self._tiles, self._views = tiles, views
        for gone in before - shown:
            self._frames.pop(gone, None)
        if self._full or self._dirty:
            self._wake.set()
        if shown != before:
            self.on_shown_changed()

    # -- drawing --------------------------------------------------------------------------

    def _take_job(self) -> _Job | None:
        full, dirty = self._full, self._dirty
        if not full and not dirty:
            return None
        self._full, self._dirty = False, set()
        tiles = [(t, self._views[t.member_id], self._frames.pop(t.member_id, None))
                 for t in self._tiles if full or t.member_id in dirty]
        return _Job(full, tiles, frozenset(self._views))

    def _render(self, job: _Job) -> None:
        started = time.thread_time()
        width, height = self.display.width, self.display.height
        canvas = self._canvas
        full = job.full or canvas is None
        if canvas is None:
            canvas = self._canvas = new_canvas(width, height)
        if full:
            fill(canvas, Rect(0, 0, width, height), BACKGROUND)
        for gone in set(self._pictures) - job.live:
            del self._pictures[gone]
        dirty: list[Rect] = [Rect(0, 0, width, height)] if full else []
        for spec, view, frame in job.tiles:
            self._draw_tile(canvas, spec, view, frame)
            if not full:
                dirty.append(spec.rect)
        self.display.present(canvas, dirty)
        self.renders += 1
        self.render_cpu_s += time.thread_time() - started

    def _draw_tile(self, canvas: Canvas, spec: TileSpec, view: TileView, frame: Any) -> None:
        member_id, rect = spec.member_id, spec.rect
        if not view.video:
            self._pictures.pop(member_id, None)
        elif frame is not None:
            shown = fit(rect, frame.width, frame.height)
            # scale and convert in one libswscale pass, straight to the shown size
            pixels = frame.reformat(width=shown.w, height=shown.h,
                                    format="bgra").to_ndarray()
            self._pictures[member_id] = (rect, shown, pixels)
            self.frames_shown[member_id] = self.frames_shown.get(member_id, 0) + 1
        picture = self._pictures.get(member_id)
        if picture is not None and picture[0] == rect:
            _, shown, pixels = picture
            if shown != rect:
                fill_around(canvas, rect, shown, TILE)  # bars beside another shape
            blit(canvas, shown, pixels)
        else:
            draw_placeholder(canvas, rect, view)
        draw_overlays(canvas, rect, view)

    # -- running --------------------------------------------------------------------------

    @property
    def min_interval(self) -> float:
        return 1.0 / max(1.0, min(self.display.refresh_hz, self.settings.max_fps))

    async def run(self) -> None:
        """Take the screen and keep it drawn until cancelled (then give it back)."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.display.open)
        log.info("display: %r open (%dx%d at %g Hz), layout %s", self.display,
                 self.display.width, self.display.height, self.display.refresh_hz,
                 self.layout)
        self._full = True
        self._arrange()
        try:
            while True:
                await self._wake.wait()
                delay = self._next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._wake.clear()
                job = self._take_job()
                if job is None:
                    continue
                started = time.monotonic()
                await asyncio.to_thread(self._render, job)
                self._next_at = started + self.min_interval
        finally:
            self._loop = None
            await asyncio.to_thread(self.display.close)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the page shows about the screen."""
        tiles = []
        for t in self._tiles:
            view = self._views[t.member_id]
            tiles.append({"id": t.member_id, "name": view.name, "main": t.main,
                          "x": t.rect.x, "y": t.rect.y, "w": t.rect.w, "h": t.rect.h,
                          "talking": view.talking, "hand_raised": view.hand_raised,
                          "muted": view.muted, "video": view.video})
        return {"backend": self.display.name, "width": self.display.width,
                "height": self.display.height, "layout": self.layout, "layouts": list(LAYOUTS),
                "pinned": self.pinned, "focus": self.focus, "self_view": self.settings.self_view,
                "hide_video_muted": self.settings.hide_video_muted, "tiles": tiles,
                "renders": self.renders, "frames_offscreen": self.frames_offscreen}

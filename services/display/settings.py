"""The screen's settings, as the display service takes them (built from ``[display]``)."""

from __future__ import annotations

from dataclasses import dataclass

from services.display.layout import Layout

#: The self-view tile's member id (the session's events name this box "local" too).
LOCAL = "local"


@dataclass(frozen=True)
class DisplaySettings:
    #: The layout at start: ``grid``, ``speaker`` or ``single``.
    layout: Layout = "grid"
    #: Leave out members who send no video (their tiles would show only a name).
    hide_video_muted: bool = False
    #: Show this box's own camera as a tile of its own.
    self_view: bool = False
    #: The self-view tile's label.
    self_name: str = "You"
    #: Never present more often than this (the screen's refresh caps it too).
    max_fps: float = 30.0

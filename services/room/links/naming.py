"""How linked members and the link's own presence look in a room.

A member forwarded from another room is shown there under ``"<display> ⇄ <room>"``, so
every box in the far room (not only the one that set the link up) can tell who is linked
and from where. The link follows each room as a participant that publishes nothing; its
display starts with the same mark, and rosters leave it out.
"""

from __future__ import annotations

MARK = "\u21c4"  # ⇄
WATCHER_DISPLAY = f"{MARK}link"
_SEP = f" {MARK} "


def linked_display(display: str, origin: str) -> str:
    """The display of a member forwarded from the room named ``origin``."""
    return f"{display}{_SEP}{origin}"


def split_display(display: str) -> tuple[str, str]:
    """``(display, origin room)``; the origin is empty for a member of this room."""
    if _SEP in display:
        name, origin = display.rsplit(_SEP, 1)
        return name, origin
    return display, ""


def is_link_watcher(display: str | None) -> bool:
    """Whether a participant is a link following the room (not a person)."""
    return bool(display) and str(display).startswith(WATCHER_DISPLAY)

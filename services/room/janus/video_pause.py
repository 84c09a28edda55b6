"""Pausing subscribed video streams that nobody on the box shows.

A screen shows some members and not others (a single layout, a full strip): the video
of a member not on screen need not cross the network nor be decoded. Janus' VideoRoom
stops relaying one stream of a subscription when asked to ``configure`` it with
``send: false``, without a renegotiation, and starts again (with a keyframe request to
the publisher) on ``send: true``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)


class _Handle(Protocol):
    async def send(self, body: dict[str, Any], jsep: Any = None) -> Any: ...


class VideoPause:
    """Which video streams of one subscription Janus has been told not to send."""

    def __init__(self) -> None:
        self._paused: dict[str, str] = {}  # our mid -> the feed it carried when paused

    def __repr__(self) -> str:
        return f"<VideoPause {sorted(self._paused)}>"

    @property
    def paused_feeds(self) -> set[str]:
        return set(self._paused.values())

    def plan(self, mid_feed: Mapping[str, tuple[str, str]],
             wanted: Callable[[str], bool]) -> list[dict[str, Any]]:
        """The ``streams`` of a configure request that brings Janus in line, or []."""
        for mid in [m for m, feed in self._paused.items() if mid_feed.get(m, ("",))[0] != feed]:
            del self._paused[mid]  # gone, or the mid now carries another feed (sent anew)
        changes = []
        for mid, (feed, kind) in sorted(mid_feed.items()):
            if kind != "video":
                continue
            pause = not wanted(feed)
            if pause != (mid in self._paused):
                changes.append({"mid": mid, "send": not pause})
        return changes

    async def apply(self, handle: _Handle, mid_feed: Mapping[str, tuple[str, str]],
                    wanted: Callable[[str], bool]) -> None:
        changes = self.plan(mid_feed, wanted)
        if not changes:
            return
        await handle.send({"request": "configure", "streams": changes})
        for change in changes:
            mid = change["mid"]
            if change["send"]:
                self._paused.pop(mid, None)
            else:
                self._paused[mid] = mid_feed[mid][0]
        log.info("video streams paused: %s", sorted(self.paused_feeds) or "none")

    def reset(self) -> None:
        """A new subscription: Janus sends every stream of it."""
        self._paused.clear()

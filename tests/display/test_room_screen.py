"""The room on the sim screen with a real Janus: remote boxes' pattern strips are
readable in the composed picture, and the video of members not on screen is paused at
the server (not sent, not decoded) until they are shown again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from drivers.camera.strip import decode_strip
from drivers.display.sim import SimDisplay
from services.display.screen import RoomScreen
from services.display.settings import DisplaySettings
from services.room.api import RoomState
from tests.harness.peers import RoomPeer

pytestmark = [pytest.mark.janus, pytest.mark.loop_guard, pytest.mark.timeout(150)]


def show(box: RoomPeer, display: SimDisplay, settings: DisplaySettings) -> RoomScreen:
    """A screen on ``box``'s loop, wired to its session as the appliance wires it."""
    async def build() -> RoomScreen:
        session = box.session
        screen = RoomScreen(display, settings)
        screen.attach(session)
        session.set_video_filter(screen.shows)
        session.set_remote_video_consumer(screen.on_video)
        screen.on_shown_changed = lambda: session.set_video_filter(screen.shows)

        async def follow() -> None:  # the appliance does this on each room event
            while True:
                screen.room_changed()
                await asyncio.sleep(0.1)

        box.screen_tasks = [asyncio.create_task(screen.run(), name="display"),  # type: ignore[attr-defined]
                            asyncio.create_task(follow(), name="display:room")]
        return screen

    return box.call(lambda s: build())


def readable(display: SimDisplay, seen: set[int], need: int, timeout: float = 30.0,
             region: tuple[slice, slice] = (slice(None), slice(None))) -> set[int]:
    """Frame numbers read from the screen's picture until ``need`` distinct ones."""
    numbers: set[int] = set()
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline and len(numbers) < need:
        count, px = display.frame()
        if count != last:
            last = count
            info = decode_strip(np.ascontiguousarray(px[region][..., :3]))
            if info is not None and info.frame_number not in seen:
                numbers.add(info.frame_number)
        time.sleep(0.02)
    assert len(numbers) >= need, f"only {sorted(numbers)} read from the screen"
    return numbers


def test_remote_strips_are_readable_and_hidden_members_paused(make_peer: Any,
                                                              room_number: int) -> None:
    cam_a = make_peer("cama", room_number, tone="tone:440", camera=True)
    cam_b = make_peer("camb", room_number, tone="tone:660", camera=True)
    cam_a.call(lambda s: s.join())
    cam_b.call(lambda s: s.join())
    box = make_peer("box", room_number, tone=None, receive_video="auto")
    box.call(lambda s: s.join())
    assert box.session.state == RoomState.IN_ROOM
    a, b = cam_a.session.local_id, cam_b.session.local_id
    box.wait_for(lambda: {a, b} <= {m.id for m in box.session.members() if m.has_video},
                 what="both cameras in the roster")

    # the cameras send 320x240: a 640x240 screen shows one in the middle (single layout)
    # and two side by side (grid), always at their own size
    display = SimDisplay(640, 240)
    middle = (slice(None), slice(160, 480))
    screen = show(box, display, DisplaySettings(layout="single"))
    box.call(lambda s: screen.pin(a))
    numbers = readable(display, set(), 10, region=middle)
    assert max(numbers) - min(numbers) >= 9  # a live picture, not one frame
    backend: Any = box.session._backend
    box.wait_for(lambda: backend._pause.paused_feeds == {b}, timeout=10,
                 what="b's video paused at the server")
    assert screen.frames_shown.get(a, 0) >= 10 and b not in screen.frames_shown
    offscreen = screen.frames_offscreen
    time.sleep(1.5)
    assert screen.frames_offscreen - offscreen <= 3  # paused: nothing arrives for b

    # b on screen: its stream is resumed (a keyframe is asked for) and shows at once
    box.call(lambda s: screen.pin(b))
    started = time.monotonic()
    box.wait_for(lambda: backend._pause.paused_feeds == {a}, timeout=10,
                 what="a's video paused, b's resumed")
    readable(display, numbers, 5, timeout=20, region=middle)
    assert time.monotonic() - started < 10
    # the count is bumped after the picture is out: give it the moment it needs
    box.wait_for(lambda: screen.frames_shown.get(b, 0) >= 5, timeout=5,
                 what="b's frames counted as shown")

    # both in the grid: nothing paused, both readable
    box.call(lambda s: screen.set_layout("grid"))
    box.wait_for(lambda: backend._pause.paused_feeds == set(), timeout=10,
                 what="both videos sent")
    left = readable(display, set(), 5, region=(slice(None), slice(0, 320)))
    right = readable(display, set(), 5, region=(slice(None), slice(320, 640)))
    assert left and right
    tiles = screen.status()["tiles"]
    assert sorted(t["id"] for t in tiles) == sorted([a, b])  # in the order they came
    assert [(t["x"], t["w"], t["h"]) for t in tiles] == [(0, 320, 240), (320, 320, 240)]
    for task in box.screen_tasks:  # type: ignore[attr-defined]
        box.loop.submit(_cancel(task))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

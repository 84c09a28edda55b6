"""The room on the sim screen: tiles for joins, leaves and talking; layouts; pictures that
keep their content; redraws only on change and never faster than the screen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from drivers.camera.sim import PatternRenderer
from drivers.camera.strip import decode_strip
from drivers.display.base import BadResolution, parse_resolution
from drivers.display.sim import SimDisplay
from services.display.layout import arrange, fit
from services.display.paint import TALKING
from services.display.screen import RoomScreen
from services.display.settings import DisplaySettings
from services.room.api import Controls, Member

pytestmark = [pytest.mark.loop_guard, pytest.mark.timeout(60)]


class FakeRoom:
    """The room as the screen reads it: a member list and the controls."""

    def __init__(self) -> None:
        self.list: list[Member] = []
        self.controls = Controls()

    def members(self) -> list[Member]:
        return list(self.list)

    def get(self, member_id: str) -> Member:
        return next(m for m in self.list if m.id == member_id)


async def until(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def drawn(screen: RoomScreen, display: SimDisplay) -> np.ndarray:
    """The screen once every pending change is on it."""
    await until(lambda: not screen._full and not screen._dirty, "the redraw")
    await asyncio.sleep(screen.min_interval + 0.05)
    await until(lambda: not screen._full and not screen._dirty, "the redraw")
    return display.frame()[1]


def ids(screen: RoomScreen) -> list[str]:
    return [t["id"] for t in screen.status()["tiles"]]


def has_ring(screen_px: np.ndarray, tile: dict[str, Any]) -> bool:
    """The talking ring's colour along the tile's top edge."""
    x, y, w = tile["x"], tile["y"], tile["w"]
    edge = screen_px[y + 1, x + w // 4:x + 3 * w // 4, :3]
    return bool(np.all(edge == np.array(TALKING[:3], dtype=np.uint8)))


@pytest.fixture
async def setup() -> AsyncIterator[tuple[FakeRoom, SimDisplay, RoomScreen]]:
    room = FakeRoom()
    display = SimDisplay(640, 480)
    screen = RoomScreen(display, DisplaySettings())
    screen.attach(room)
    task = asyncio.create_task(screen.run(), name="display")
    await until(lambda: display.opened, "the display open")
    try:
        yield room, display, screen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not display.opened


async def test_tiles_follow_joins_leaves_and_talking(
        setup: tuple[FakeRoom, SimDisplay, RoomScreen]) -> None:
    room, display, screen = setup
    await drawn(screen, display)
    assert ids(screen) == []
    room.list.append(Member("1", "Alice"))
    screen.room_changed()
    px = await drawn(screen, display)
    (tile,) = screen.status()["tiles"]
    assert (tile["id"], tile["name"], tile["w"], tile["h"]) == ("1", "Alice", 640, 480)
    assert not has_ring(px, tile)
    room.list.append(Member("2", "Bob"))
    room.list.append(Member("3", "Carol", hand_raised=True, audio_muted=True))
    screen.room_changed()
    px = await drawn(screen, display)
    tiles = screen.status()["tiles"]
    assert [t["id"] for t in tiles] == ["1", "2", "3"]
    assert [(t["w"], t["h"]) for t in tiles] == [(320, 240)] * 3  # a 2x2 grid, one free
    assert tiles[2]["hand_raised"] and tiles[2]["muted"]
    # Bob talks: his tile, and only his, gets the ring
    room.get("2").talking = True
    screen.room_changed()
    px = await drawn(screen, display)
    tiles = screen.status()["tiles"]
    assert [has_ring(px, t) for t in tiles] == [False, True, False]
    room.get("2").talking = False
    screen.room_changed()
    px = await drawn(screen, display)
    assert [has_ring(px, t) for t in screen.status()["tiles"]] == [False, False, False]
    # Alice leaves: two tiles left, side by side
    room.list.pop(0)
    screen.room_changed()
    await drawn(screen, display)
    tiles = screen.status()["tiles"]
    assert [(t["id"], t["x"], t["w"]) for t in tiles] == [("2", 0, 320), ("3", 320, 320)]


async def test_speaker_layout_follows_the_talker_and_a_pin(
        setup: tuple[FakeRoom, SimDisplay, RoomScreen]) -> None:
    room, display, screen = setup
    room.list += [Member("1", "Alice"), Member("2", "Bob"), Member("3", "Carol")]
    assert screen.set_layout("speaker") == "speaker"
    await drawn(screen, display)
    assert screen.focus == "1"  # nobody talked yet: the first
    room.get("3").talking = True
    screen.room_changed()
    await drawn(screen, display)
    assert screen.focus == "3"
    room.get("3").talking = False  # the last talker keeps the large tile
    screen.room_changed()
    assert screen.focus == "3"
    screen.pin("2")
    await drawn(screen, display)
    assert screen.focus == "2"
    main = [t for t in screen.status()["tiles"] if t["main"]]
    assert [(t["id"], t["w"], t["h"]) for t in main] == [("2", 640, 360)]
    assert screen.set_layout("next") == "single"
    await drawn(screen, display)
    assert ids(screen) == ["2"]
    assert not screen.shows("1") and not screen.shows("3")
    screen.pin(None)
    assert ids(screen) == ["3"]
    assert screen.set_layout("next") == "grid"
    with pytest.raises(ValueError, match="layout must be one of grid, speaker, single"):
        screen.set_layout("mosaic")


async def test_remote_pictures_are_readable_and_offscreen_ones_dropped(
        setup: tuple[FakeRoom, SimDisplay, RoomScreen]) -> None:
    room, display, screen = setup
    room.list += [Member("1", "Alice", has_video=True), Member("2", "Bob", has_video=True)]
    screen.set_layout("single")
    screen.pin("1")
    pattern = PatternRenderer(640, 480)
    for n in range(5):
        screen.on_video("1", pattern.render(100 + n, time.monotonic()))
        screen.on_video("2", pattern.render(900 + n, time.monotonic()))
        await asyncio.sleep(0.05)
    px = await drawn(screen, display)
    info = decode_strip(np.ascontiguousarray(px[..., :3]))
    assert info is not None and info.frame_number == 104
    assert screen.frames_offscreen == 5 and "2" not in screen.frames_shown


async def test_two_pictures_side_by_side_are_both_readable() -> None:
    room = FakeRoom()
    room.list += [Member("1", "Alice", has_video=True), Member("2", "Bob", has_video=True)]
    display = SimDisplay(1280, 480)
    screen = RoomScreen(display, DisplaySettings())
    screen.attach(room)
    task = asyncio.create_task(screen.run(), name="display")
    try:
        pattern = PatternRenderer(640, 480)
        await until(lambda: display.opened, "the display open")
        for n in range(3):
            screen.on_video("1", pattern.render(200 + n, time.monotonic()))
            screen.on_video("2", pattern.render(300 + n, time.monotonic()))
            await asyncio.sleep(0.05)
        px = await drawn(screen, display)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    left = decode_strip(np.ascontiguousarray(px[:, :640, :3]))
    right = decode_strip(np.ascontiguousarray(px[:, 640:, :3]))
    assert left is not None and right is not None
    assert (left.frame_number, right.frame_number) == (202, 302)


async def test_redraws_only_on_change_and_at_most_at_the_screen_rate(
        setup: tuple[FakeRoom, SimDisplay, RoomScreen]) -> None:
    room, display, screen = setup
    room.list.append(Member("1", "Alice", has_video=True))
    screen.room_changed()
    await drawn(screen, display)
    before = display.presents
    await asyncio.sleep(0.5)
    assert display.presents == before  # nothing changed: nothing drawn
    # 100 frames a second, on a 30 Hz screen
    pattern = PatternRenderer(320, 240)
    frame = pattern.render(1, time.monotonic())
    started, count = time.monotonic(), display.presents
    while time.monotonic() - started < 1.0:
        screen.on_video("1", frame)
        await asyncio.sleep(0.01)
    rate = (display.presents - count) / (time.monotonic() - started)
    assert 10 <= rate <= 31, rate
    # 10 frames a second: one redraw each
    count, started = display.presents, time.monotonic()
    for _ in range(10):
        screen.on_video("1", frame)
        await asyncio.sleep(0.1)
    await drawn(screen, display)
    assert 9 <= display.presents - count <= 11


async def test_hide_video_muted_and_self_view() -> None:
    room = FakeRoom()
    room.list += [Member("1", "Alice", has_video=True), Member("2", "Phone")]
    display = SimDisplay(640, 480)
    screen = RoomScreen(display, DisplaySettings(hide_video_muted=True, self_view=True,
                                                 self_name="Lobby"))
    screen.attach(room)
    task = asyncio.create_task(screen.run(), name="display")
    try:
        await until(lambda: display.opened, "the display open")
        assert ids(screen) == ["1", "local"]
        local = screen.status()["tiles"][1]
        assert (local["name"], local["video"]) == ("Lobby", False)
        room.controls.mic_enabled = False
        pattern = PatternRenderer(640, 480)
        screen.offer_self_frame(pattern.render(7, time.monotonic()))
        await until(lambda: screen.status()["tiles"][1]["video"], "the self-view picture")
        assert screen.status()["tiles"][1]["muted"]
        await until(lambda: screen.frames_shown.get("local"), "the self frame drawn")
        screen.offer_self_frame(None)  # the camera stopped
        await until(lambda: not screen.status()["tiles"][1]["video"], "the camera gone")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_layout_geometry() -> None:
    assert arrange("grid", [], None, 640, 480) == []
    five = arrange("grid", list("abcde"), None, 1280, 720)
    assert [(t.rect.w, t.rect.h) for t in five] == [(426, 360)] * 3 + [(426, 360)] * 2
    assert (five[3].rect.x, five[4].rect.x) == (212, 638)  # the short last row, centred
    strip = arrange("speaker", list("abc"), "b", 1280, 720)
    assert [t.member_id for t in strip] == ["b", "a", "c"] and strip[0].main
    assert all(t.rect.y == 540 and t.rect.h == 180 for t in strip[1:])
    assert fit(strip[0].rect, 640, 480).w == 720  # 4:3 in 16:9: pillarboxed
    assert len(arrange("grid", [str(i) for i in range(20)], None, 1920, 1080)) == 16
    assert parse_resolution("auto") is None
    assert parse_resolution("1920x1080") == (1920, 1080)
    for bad in ("1920", "1921x1080", "10x10", "big"):
        with pytest.raises(BadResolution):
            parse_resolution(bad)

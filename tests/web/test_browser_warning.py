"""The page shows a room warning (the box is in the room, something does not work as
configured) under the state, from the status, and logs the event."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.web.conftest import Served
from tests.web.test_browser import _login, browser  # noqa: F401  (fixture)


async def test_room_warning_shows_on_the_status_tab(served: Served,
                                                    browser: Browser) -> None:  # noqa: F811
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    try:
        await _login(page, served)
        await expect(page.locator("#room-warnings")).to_be_hidden()
        await served.room.join()
        warning = {"code": "VIDEO_CODEC_UNSUPPORTED", "room_codecs": ["vp9"],
                   "supported": ["h264", "vp8"],
                   "message": "the room allows only vp9 video; this box sends h264, vp8: "
                              "in the room with audio only"}
        served.room.warnings = [warning]  # type: ignore[attr-defined]
        served.appliance.bus.publish("room-warning", warning)
        box = page.locator("#room-warnings")
        await expect(box).to_be_visible()
        await expect(box).to_contain_text("VIDEO_CODEC_UNSUPPORTED")
        await expect(box).to_contain_text("only vp9 video")
        await expect(page.locator("#events")).to_contain_text("room-warning")
        await expect(page.locator("#state-badge")).to_have_text("in room")
        # it goes when the room no longer has it (the box left)
        served.room.warnings = []  # type: ignore[attr-defined]
        await served.room.leave()
        await expect(box).to_be_hidden()
    finally:
        await context.close()

"""The room screen's controls on the page, in real headless Chromium: its state, the sim
screen's picture, the layout buttons and a member's pin button."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from device.screen import ScreenHost
from drivers.display.sim import SimDisplay
from services.display.screen import RoomScreen
from services.display.settings import DisplaySettings
from services.room.api import Member
from tests.web.conftest import Served
from tests.web.test_browser import PHONE, _login, browser  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser]


@pytest.fixture
async def screen(served: Served) -> AsyncIterator[RoomScreen]:
    """A sim screen showing the served appliance's (fake) room, as ``device.screen``
    wires it."""
    host = ScreenHost()
    host.backend = "sim"
    room_screen = RoomScreen(SimDisplay(640, 360), DisplaySettings(), served.appliance.bus.publish)
    room_screen.attach(served.room)
    host.screen = room_screen
    served.appliance.extras["display"] = host
    served.appliance.status_providers.add("display", host)
    served.appliance.dispatcher.display = host
    task = asyncio.create_task(room_screen.run(), name="display")
    try:
        yield room_screen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_screen_card_layouts_and_pin(served: Served, screen: RoomScreen,
                                           browser: Browser) -> None:  # noqa: F811
    await served.room.join()
    served.room.add_member(Member("11", "Alice", has_video=True))
    served.room.add_member(Member("22", "Bob"))
    screen.room_changed()
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await _login(page, served)
    state = page.locator("#screen-state")
    await expect(state).to_have_text("sim, 640x360, grid layout, 2 tiles")
    # the sim screen's picture loads, at the screen's size
    await expect(page.locator("#screen")).to_be_visible()
    for _ in range(150):
        if await page.locator("#screen").evaluate("img => img.naturalWidth") == 640:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the screen's picture never loaded")
    await page.click("[data-layout=single]")
    await expect(state).to_have_text("sim, 640x360, single layout, 1 tiles")
    assert screen.layout == "single"
    await expect(page.locator("[data-layout=single]")).to_have_class("on")
    # Bob's pin button: Bob on the whole screen
    await page.locator("[data-member='22'] button", has_text="Pin").click()
    await expect(state).to_contain_text("pinned: Bob")
    assert screen.pinned == "22" and screen.focus == "22"
    await page.click("#screen-unpin")
    await expect(state).to_have_text("sim, 640x360, single layout, 1 tiles")
    assert screen.pinned is None
    await page.click("[data-layout=next]")
    await expect(state).to_contain_text("grid layout")
    await context.close()

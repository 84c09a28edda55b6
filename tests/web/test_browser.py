"""The config page in real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from services.room.api import Member
from tests.web.conftest import FakeButtons, Served

pytestmark = [pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-sync"]
PHONE: ViewportSize = {"width": 390, "height": 844}
LIVE = 1000  # ms: status must follow an action within a second
expect.set_options(timeout=15_000)  # everything else: generous, the box may be loaded


@contextlib.asynccontextmanager
async def browser_in_netns(ns: str, tmp_path: Path,
                           args: list[str] = ARGS) -> AsyncIterator[Browser]:
    """Debian's Chromium started inside network namespace ``ns`` (it talks to Playwright
    over pipes, so it needs no other network)."""
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    async with async_playwright() as p:
        browser = await asyncio.wait_for(
            p.chromium.launch(executable_path=str(wrapper), args=args), 60)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await asyncio.wait_for(
            p.chromium.launch(executable_path=CHROMIUM, args=ARGS), 60)
        try:
            yield browser
        finally:
            await browser.close()


async def _login(page: Page, served: Served) -> None:
    await page.goto(served.url)
    await expect(page.locator("#login-view")).to_be_visible()
    await page.fill("#password", served.password)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#app-view")).to_be_visible()
    await _event_stream_open(served)


async def _event_stream_open(served: Served) -> None:
    """Events published before the page subscribed are not replayed: wait for it."""
    for _ in range(300):
        if served.server.context.sse_clients > 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the page never opened its event stream")


async def test_login_settings_controls_members(served: Served, browser: Browser,
                                               tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    panel = FakeButtons()
    served.appliance.extras["buttons"] = panel
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2,
                                        is_mobile=True, has_touch=True)
    page = await context.new_page()
    page.set_default_timeout(10_000)

    # Login: a wrong password is refused with a reason, the right one opens the page.
    await page.goto(served.url)
    await expect(page.locator("#login-view")).to_be_visible()
    await page.screenshot(path=shots / "login.png", full_page=True)
    await page.fill("#password", "not-the-password")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("wrong password")
    await page.fill("#password", served.password)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#st-state")).to_have_text("idle")
    await expect(page.locator("#state-badge")).to_have_text("idle")
    await _event_stream_open(served)

    # Settings: a bad value is shown beside its field; a good one persists a reload.
    await page.click("nav [data-tab=settings]")
    await expect(page.locator("#cfg-room-display_name")).to_be_visible()
    await page.fill("#cfg-room-room", "0")
    await page.click("#settings-form button[type=submit]")
    await expect(page.locator("#cfg-room-room-error")).to_contain_text("allowed range")
    await page.fill("#cfg-room-room", "77")
    await page.fill("#cfg-room-display_name", "Front desk")
    await page.uncheck("#cfg-audio-aec")
    await page.click("#settings-form button[type=submit]")
    await expect(page.locator("#settings-result")).to_contain_text("Saved")
    await page.screenshot(path=shots / "settings.png", full_page=False)
    await page.reload()
    await expect(page.locator("#app-view")).to_be_visible()  # still logged in
    await page.click("nav [data-tab=settings]")
    await expect(page.locator("#cfg-room-display_name")).to_have_value("Front desk")
    await expect(page.locator("#cfg-room-room")).to_have_value("77")
    await expect(page.locator("#cfg-audio-aec")).not_to_be_checked()
    saved = tomllib.loads(served.appliance.config_path.read_text())
    assert saved["room"] == {"room": 77, "display_name": "Front desk"}
    assert saved["audio"] == {"aec": False}

    # Controls: an action refused in this state shows why; join, mute, leave.
    await page.click("nav [data-tab=controls]")
    await page.click("#hand")
    await expect(page.locator("#control-error")).to_contain_text("not in a room")
    await page.click("#join")
    await expect(page.locator("#state-badge")).to_have_text("in room")
    await expect(page.locator("#mic")).to_have_text("Mic on")
    await page.click("#mic")
    await expect(page.locator("#mic")).to_have_text("Mic off", timeout=LIVE)
    assert served.room.controls.mic_enabled is False
    # A change made elsewhere (a button, the serial line) shows up live too.
    await served.appliance.dispatcher.dispatch("mute", {"state": "off"}, source="test")
    await expect(page.locator("#mic")).to_have_text("Mic on", timeout=LIVE)
    # Virtual buttons (sim): press and release reach the button panel.
    mute_button = page.locator("#virtual-buttons [data-role=mute]")
    await expect(mute_button).to_be_visible()
    await mute_button.dispatch_event("pointerdown")
    await mute_button.dispatch_event("pointerup")
    for _ in range(50):
        if len(panel.pressed) >= 2:
            break
        await asyncio.sleep(0.05)
    assert panel.pressed == [("mute", "press"), ("mute", "release")]
    await page.screenshot(path=shots / "controls.png", full_page=True)

    # A member appears (through the bus, live), talking, then muted from the page.
    await page.click("nav [data-tab=status]")
    served.room.add_member(Member("7", "Ada Lovelace", has_audio=True))
    member = page.locator("#members [data-member='7']")
    await expect(member).to_contain_text("Ada Lovelace")
    await expect(member.locator(".playout")).to_have_text("24 ms (target 14), 0.5% concealed")
    served.room.set_talking("7", True)
    await expect(member.locator(".dot")).to_have_class("dot talking")
    await member.locator("button").click()
    await expect(member).to_contain_text("silenced here")
    assert "7" in served.room.controls.muted_members
    await expect(page.locator("#stats")).to_contain_text("bitrate_kbps")
    await page.screenshot(path=shots / "status.png", full_page=True)

    await page.click("nav [data-tab=controls]")
    await page.click("#leave")
    await expect(page.locator("#state-badge")).to_have_text("idle")

    await page.click("nav [data-tab=logs]")
    await expect(page.locator("#log")).to_contain_text("action leave")
    await page.screenshot(path=shots / "logs.png")

    # Log out: back to the login form, and the API agrees.
    await page.click("#logout")
    await expect(page.locator("#login-view")).to_be_visible()
    status = await page.evaluate("fetch('/api/status').then(r => r.status)")
    assert status == 401
    await context.close()
    for name in ("login", "settings", "controls", "status", "logs"):
        assert (shots / f"{name}.png").stat().st_size > 5000


async def test_desktop_status_page(served: Served, browser: Browser, tmp_path: Path) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await _login(page, served)
    served.appliance.bus.publish("room-error", {"code": "WRONG_PIN", "message": "wrong pin"})
    await expect(page.locator("#events")).to_contain_text("WRONG_PIN")
    await page.screenshot(path=tmp_path / "status-desktop.png", full_page=True)
    await context.close()


async def test_page_shows_the_mic_and_opens_it_only_to_watch_its_level(
        served: Served, browser: Browser, tmp_path: Path) -> None:
    from drivers.audio.sim import SimMic
    from drivers.camera.sim import SimCamera
    from services.media.service import MediaService

    media = MediaService(lambda: SimCamera(320, 240, 15),
                         lambda: SimMic("tone:440", state_dir=tmp_path),
                         record_dir=tmp_path / "rec", emit=served.appliance.bus.publish)
    assert media.mic is not None
    served.appliance.status_providers.add("media", media.status)
    served.appliance.extras["mic_users"] = media.mic
    running = asyncio.create_task(media.run(), name="test:media")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        page.set_default_timeout(10_000)
        await _login(page, served)
        await expect(page.locator("#st-mic")).to_have_text("closed")
        assert not media.mic.is_open
        await page.click("#mic-watch")
        await expect(page.locator("#st-mic")).to_contain_text("open (page-meter:")
        assert media.mic.is_open
        await expect(page.locator("#meter-box")).to_be_visible()
        await expect(page.locator("#meter-db")).to_contain_text("dBFS")
        await page.click("#mic-watch")  # stop watching: the page lets the mic go
        await expect(page.locator("#st-mic")).to_have_text("closed")
        assert not media.mic.is_open
        await expect(page.locator("#st-health")).to_contain_text("ok")
    finally:
        await context.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

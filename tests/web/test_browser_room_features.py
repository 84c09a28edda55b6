"""The room status, notice, metadata, requests to speak and chat lock on the config page,
in real headless Chromium, on a moderator box (room.secret set)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from services.room.api import Member
from services.room.feature_commands import CMD_SPEAK_REQUEST
from services.room.features import RoomFeatures
from services.room.messages import encode_custom
from services.web import WebServer
from services.web.passwords import reset
from tests.web.conftest import TIMEOUT, Served, make_appliance
from tests.web.test_browser import _login, browser  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser]


@pytest.fixture
async def moderator(tmp_path: Path, log_ring: None) -> AsyncIterator[Served]:
    appliance = make_appliance(tmp_path, secret="s3cret")
    password = await asyncio.to_thread(reset, appliance.state_dir)
    server = WebServer(appliance)
    await asyncio.wait_for(server.start(), TIMEOUT)
    try:
        yield Served(appliance, server, password)
    finally:
        await asyncio.wait_for(server.close(), TIMEOUT)
        await asyncio.wait_for(appliance.dispatcher.close(), TIMEOUT)


def sent(served: Served) -> list[str]:
    return [cmd for cmd, _ in served.room.sent]


async def until_sent(served: Served, cmd: str) -> None:
    for _ in range(100):
        if cmd in sent(served):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{cmd} never sent: {sent(served)}")


async def test_room_status_requests_and_chat_lock_on_the_page(
        moderator: Served, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await _login(page, moderator)
    await moderator.appliance.dispatcher.dispatch("join", {}, source="test")
    await expect(page.locator("#state-badge")).to_have_text("in room")
    card = page.locator("#room-features")
    await expect(card).to_be_visible()
    await expect(page.locator("#rf-status")).to_have_text("not set")

    # A listener asks to speak: the request shows live, and Accept answers it (signed).
    moderator.room.add_member(Member("7", "Ada Lovelace", role="listener"))
    features = moderator.appliance.dispatcher.features
    assert isinstance(features, RoomFeatures)
    features.incoming("7", encode_custom(CMD_SPEAK_REQUEST, {"request": "r1",
                                                             "timeout_ms": 30_000}), None, None)
    request = page.locator("#rf-requests [data-request='7']")
    await expect(request).to_contain_text("Ada Lovelace asks to speak")
    await request.get_by_role("button", name="Accept").click()
    await until_sent(moderator, "edgeroom.speak-answer")
    await expect(page.locator("#rf-requests")).to_contain_text("no requests")

    # Status, notice, chat lock and metadata, each reaching the room and shown.
    await page.select_option("#rf-status-set", "paused")
    await expect(page.locator("#rf-status")).to_have_text("paused")
    await expect(page.locator("#rf-status")).to_have_class("badge room-paused")
    await page.fill("#rf-notice-text", "Back at 3 pm")
    await page.click("#rf-notice-form button[type=submit]")
    await expect(page.locator("#rf-notice")).to_have_text("Back at 3 pm")
    await page.click("#rf-lock")
    await expect(page.locator("#rf-chat")).to_have_text("only moderators may post")
    await page.fill("#rf-meta-text", '{"topic": "budget"}')
    await page.click("#rf-meta-form button[type=submit]")
    await expect(page.locator("#rf-meta")).to_have_text('{"topic":"budget"}')
    await page.fill("#rf-meta-text", "{not json")
    await page.click("#rf-meta-form button[type=submit]")
    await expect(page.locator("#control-error")).to_contain_text("not JSON")
    for cmd in ("edgeroom.room-status", "edgeroom.chat-lock", "edgeroom.meta"):
        assert cmd in sent(moderator)
    assert features.view()["status"] == "paused" and features.view()["chat"]["locked"]

    # As a listener, the page offers to ask to speak, and to withdraw the request.
    await moderator.appliance.dispatcher.dispatch("role", {"role": "listener"}, "test")
    speak = page.locator("#rf-speak")
    await expect(speak).to_have_text("Ask to speak")
    await speak.click()
    await expect(speak).to_have_text("Withdraw request")
    await until_sent(moderator, CMD_SPEAK_REQUEST)
    await speak.click()
    await expect(speak).to_have_text("Ask to speak")
    await until_sent(moderator, "edgeroom.speak-cancel")
    await page.screenshot(path=tmp_path / "room-features.png", full_page=True)
    assert (tmp_path / "room-features.png").stat().st_size > 5000

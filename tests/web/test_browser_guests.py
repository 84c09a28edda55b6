"""The admin makes, lists and revokes guest links from the config page (real Chromium)."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from services.guest.links import GuestLinkError, GuestLinks
from services.guest.proxy import GuestGate, GuestSettings
from tests.web.conftest import Served
from tests.web.test_browser import PHONE, _login, browser  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser]


async def test_make_copy_and_revoke_a_guest_link(served: Served,
                                                 browser: Browser) -> None:  # noqa: F811
    links = GuestLinks(served.appliance.state_dir)
    served.appliance.extras["guests"] = GuestGate(
        lambda: GuestSettings("ws://127.0.0.1:9", 1234), links)
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await _login(page, served)
    await page.click("nav [data-tab=controls]")
    await expect(page.locator("#guests-card")).to_be_visible()
    await page.fill("#guest-label", "Ann from sales")
    await page.select_option("#guest-hours", "1")
    await page.click("#guest-form button[type=submit]")
    url = page.locator("#guest-url")
    await expect(page.locator("#guest-new")).to_be_visible()
    value = await url.input_value()
    assert value.startswith(f"{served.url}/room?guest="), value
    token = value.split("guest=", 1)[1]
    link = links.verify(token)
    assert link.label == "Ann from sales" and 3500 < link.expires - link.created <= 3600
    item = page.locator("#guest-links li", has_text="Ann from sales")
    await expect(item).to_contain_text("until")
    await item.locator("button", has_text="Revoke").click()
    await expect(item).to_contain_text("(revoked)")
    with pytest.raises(GuestLinkError) as exc:
        links.verify(token)
    assert exc.value.code == "LINK_REVOKED"
    await context.close()

"""The config page of a whole appliance (``edgeroom run --sim``) in a real room on a real
Janus, in a private network; Chromium runs in its own namespace on that network."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.harness.api_client import password_from_log
from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    ApplianceFactory,
    PeerFactory,
    janus,
    make_appliance,
    make_peer,
    network,
    room_number,
)
from tests.harness.janus import JanusServer
from tests.harness.netns import Network
from tests.web.test_browser import browser_in_netns

pytestmark = [pytest.mark.browser, pytest.mark.janus, pytest.mark.timeout(180)]

PHONE: ViewportSize = {"width": 390, "height": 844}
LIVE = 1000  # ms
expect.set_options(timeout=30_000)


@pytest.fixture
async def netns_browser(network: Network, tmp_path: Path) -> AsyncIterator[Browser]:  # noqa: F811
    """Debian's Chromium started inside a host of the test network (it talks to
    Playwright over pipes, so it needs no other network)."""
    async with browser_in_netns(network.add_host("browser").ns, tmp_path) as browser:
        yield browser


VIDEO = "document.getElementById('camera-video')"


async def _status(page: Page) -> Any:
    return await asyncio.wait_for(
        page.evaluate("fetch('/api/status').then((r) => r.json())"), 10)


async def _until(page: Page, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` in the page (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.wait_for(page.evaluate(expression), 10):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {expression}"
        await asyncio.sleep(0.2)


async def test_page_drives_an_appliance_in_a_real_room(
        make_appliance: ApplianceFactory, make_peer: PeerFactory,  # noqa: F811
        janus: JanusServer, room_number: int,  # noqa: F811
        netns_browser: Browser, tmp_path: Path) -> None:
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"width": 320, "height": 240, "fps": 10},
        "web": {"listen": "0.0.0.0:8080"},
    })
    password = await asyncio.to_thread(password_from_log, app)
    url = f"http://{app.host.ip}:8080"
    context = await netns_browser.new_context(viewport=PHONE)
    page = await context.new_page()
    page.set_default_timeout(60_000)
    try:
        for _ in range(100):  # the page comes up with the appliance
            try:
                await page.goto(url)
                break
            except Exception:
                await asyncio.sleep(0.2)
        await page.fill("#password", password)
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#state-badge")).to_have_text("in room")  # auto_join
        # The live mic meter shows the sim mic's tone (mic-level events while it is open).
        await expect(page.locator("#meter-box")).to_be_visible()
        await expect(page.locator("#meter-db")).to_have_text(re.compile(r"^-\d+ dBFS$"))

        # Another member joins the room: it appears on the page.
        peer = make_peer("ada", room_number, tone="tone:880")
        await peer.acall(lambda s: s.join())
        member = page.locator("#members li", has_text="ada")
        await expect(member).to_be_visible()
        await page.screenshot(path=tmp_path / "room-status.png", full_page=True)
        # Its mic goes off (a box in a video room says so) and on again: the page shows it.
        await peer.acall(lambda s: s.set_mic(False))
        await expect(member.locator(".flag", has_text="mic off")).to_be_visible(timeout=10_000)
        await peer.acall(lambda s: s.set_mic(True))
        await expect(member.locator(".flag", has_text="mic off")).to_have_count(0, timeout=10_000)

        # Mute, and the status follows within a second.
        await page.click("nav [data-tab=controls]")
        await expect(page.locator("#mic")).to_have_text("Mic on")
        await page.click("#mic")
        await expect(page.locator("#mic")).to_have_text("Mic off", timeout=LIVE)
        await page.click("#mic")
        await expect(page.locator("#mic")).to_have_text("Mic on", timeout=LIVE)

        # Leave and join again.
        await page.click("#leave")
        await expect(page.locator("#state-badge")).to_have_text("idle")
        await page.click("#join")
        await expect(page.locator("#state-badge")).to_have_text("in room")
        await page.click("nav [data-tab=status]")
        await expect(page.locator("#members li", has_text="ada")).to_be_visible()
        await page.screenshot(path=tmp_path / "room-rejoined.png", full_page=True)

        # The live camera preview: WebRTC from the appliance (another namespace), fed by
        # the encoder the room uses; the JPEG fallback stays hidden.
        await expect(page.locator("#camera-video")).to_be_visible()
        await expect(page.locator("#camera")).to_be_hidden()
        await _until(page, f"{VIDEO}.videoWidth > 0 && {VIDEO}.currentTime > 0")
        assert await page.evaluate(f"{VIDEO}.videoWidth") == 320
        t0 = await page.evaluate(f"{VIDEO}.currentTime")
        await _until(page, f"{VIDEO}.currentTime > {t0} + 1")  # it plays on
        encoder = (await _status(page))["media"]["encoder"]
        assert encoder["running"], encoder
        assert sorted(encoder["subscriber_names"]) == ["preview", "room"], encoder
        await page.screenshot(path=tmp_path / "room-camera.png", full_page=True)

        # Leaving the status tab ends the preview: the encoder keeps only the room.
        await page.click("nav [data-tab=controls]")
        deadline = time.monotonic() + 20
        while "preview" in (await _status(page))["media"]["encoder"]["subscriber_names"]:
            assert time.monotonic() < deadline, "the preview peer was not closed"
            await asyncio.sleep(0.2)
        assert (await _status(page))["media"]["encoder"]["subscriber_names"] == ["room"]
        assert "camera preview closed" in app.log_text()
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        await context.close()


async def test_page_plays_sounds_and_switches_devices_in_a_room(
        make_appliance: ApplianceFactory, make_peer: PeerFactory,  # noqa: F811
        janus: JanusServer, room_number: int,  # noqa: F811
        netns_browser: Browser, tmp_path: Path) -> None:
    from tests.room.conftest import wait_tone
    from tests.room.test_playback_room import write_tone

    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"enabled": False, "receive": False},
        "web": {"listen": "0.0.0.0:8080"},
    })
    write_tone(app.state_dir / "chime.wav", 1200, 30.0)
    peer = make_peer("ada", room_number, tone=None)
    await peer.acall(lambda s: s.join())
    password = await asyncio.to_thread(password_from_log, app)
    context = await netns_browser.new_context(viewport=PHONE)
    page = await context.new_page()
    page.set_default_timeout(60_000)
    try:
        for _ in range(100):
            try:
                await page.goto(f"http://{app.host.ip}:8080")
                break
            except Exception:
                await asyncio.sleep(0.2)
        await page.fill("#password", password)
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#state-badge")).to_have_text("in room")
        await asyncio.to_thread(wait_tone, peer.speaker_path, 440, True, 40.0)
        await page.click("nav [data-tab=controls]")

        # Play a file into the room: it is listed, the member hears it, then pause and stop.
        await expect(page.locator("#playbacks")).to_have_text("nothing playing")
        await page.select_option("#play-kind", "file")
        await page.fill("#play-source", "chime.wav")
        await page.select_option("#play-destination", "room")
        await page.click("#play")
        item = page.locator("#playbacks li[data-playback]")
        await expect(item).to_have_count(1, timeout=LIVE * 3)
        await expect(item).to_have_attribute("data-state", "playing")
        await expect(item).to_contain_text("chime.wav → room")
        await asyncio.to_thread(wait_tone, peer.speaker_path, 1200, True, 15.0, 1.0, 0.2)
        await item.get_by_role("button", name="Pause").click()
        await expect(item).to_have_attribute("data-state", "paused", timeout=LIVE * 3)
        await asyncio.to_thread(wait_tone, peer.speaker_path, 1200, False, 15.0, 0.5, 0.2)
        await page.screenshot(path=tmp_path / "playbacks.png", full_page=True)
        await item.get_by_role("button", name="Stop").click()
        await expect(page.locator("#playbacks")).to_have_text("nothing playing",
                                                              timeout=LIVE * 3)
        # A bad file is refused with the reason on the page.
        await page.fill("#play-source", "missing.wav")
        await page.click("#play")
        await expect(page.locator("#control-error")).to_contain_text("no such file")

        # Switch the mic while in the room: the member hears the new one, the box stays.
        await expect(page.locator("#device-mic")).to_have_value("tone:440")
        await page.select_option("#device-mic", "tone:660")
        await page.click("[data-device=mic]")
        await asyncio.to_thread(wait_tone, peer.speaker_path, 660, True, 15.0)
        await expect(page.locator("#device-mic")).to_have_value("tone:660")
        assert (await _status(page))["devices_in_use"]["mic"] == "tone:660"
        await expect(page.locator("#state-badge")).to_have_text("in room")

        # Input sensitivity from its slider.
        await page.locator("#sensitivity").fill("80")
        await expect(page.locator("#sensitivity-out")).to_have_text("80 (-58 dBFS)",
                                                                    timeout=LIVE * 3)
        assert (await _status(page))["sensitivity"]["sensitivity"] == 80

        # The camera's mirror and rotation.
        await page.check("#camera-mirror")
        await page.select_option("#camera-rotate", "180")
        deadline = time.monotonic() + 10
        while (await _status(page))["camera_orientation"] != {"mirror": True, "rotate": 180}:
            assert time.monotonic() < deadline, (await _status(page))["camera_orientation"]
            await asyncio.sleep(0.2)
        await page.screenshot(path=tmp_path / "devices.png", full_page=True)
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        await context.close()

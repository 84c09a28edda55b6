"""Chromium plays the box's video in a VP8 room (Janus's default codec).

A whole appliance (``edgeroom run --sim``) publishes into a room whose VideoRoom allows
only VP8; Debian's Chromium, in its own namespace, joins that room the way a browser
client does (the Janus WebSocket API, ``tests/web/viewer.html``) and subscribes to the
box. Its ``getStats()`` must show VP8 frames being decoded, more and more of them, and
the box's Opus audio being played at its level.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    ApplianceFactory,
    janus,
    make_appliance,
    network,
    room_with_codec,
)
from tests.harness.janus import JanusServer
from tests.harness.netns import Network, NsLoop
from tests.web.test_browser import ARGS, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.janus, pytest.mark.timeout(180)]

VIEWER = Path(__file__).with_name("viewer.html")
#: The port the page is served on, from the browser's own host on the test network (a
#: LAN page: Chromium's local-network-access checks let it reach the room server).
PAGE_PORT = 8701
MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              "--autoplay-policy=no-user-gesture-required"]


@dataclass
class ViewerBrowser:
    browser: Browser
    origin: str


async def _viewer(request: web.Request) -> web.Response:
    return web.Response(text=VIEWER.read_text(), content_type="text/html")


@pytest.fixture
async def media_browser(network: Network, tmp_path: Path,  # noqa: F811
                        ) -> AsyncIterator[ViewerBrowser]:
    host = network.add_host("chromium")
    origin = f"http://{host.ip}:{PAGE_PORT}"
    server = NsLoop(host)
    app = web.Application()
    app.router.add_get("/viewer.html", _viewer)
    runner = web.AppRunner(app, access_log=None)

    async def serve() -> None:
        await runner.setup()
        await web.TCPSite(runner, host.ip, PAGE_PORT).start()

    server.run(serve(), 10)
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {host.ns} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    # getUserMedia needs a secure context; a LAN page over plain HTTP is not one
    secure = f"--unsafely-treat-insecure-origin-as-secure={origin}"
    try:
        async with async_playwright() as p:
            browser = await asyncio.wait_for(
                p.chromium.launch(executable_path=str(wrapper),
                                  args=[*ARGS, *MEDIA_ARGS, secure]), 60)
            try:
                yield ViewerBrowser(browser, origin)
            finally:
                await browser.close()
    finally:
        server.run(runner.cleanup(), 10)
        server.close()


async def _stats(page: Any) -> Any:
    return await asyncio.wait_for(page.evaluate("window.videoStats()"), 10)


async def test_chromium_plays_the_box_in_a_vp8_room(
        make_appliance: ApplianceFactory, janus: JanusServer,  # noqa: F811
        room_with_codec: Any, media_browser: ViewerBrowser) -> None:  # noqa: F811
    room = room_with_codec("vp8")
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"width": 320, "height": 240, "fps": 15},
    })
    context = await media_browser.browser.new_context()
    origin = media_browser.origin
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    try:
        await page.goto(f"{origin}/viewer.html?janus={janus.url}&room={room}")
        deadline = time.monotonic() + 60
        first = None
        while first is None or first["framesDecoded"] < 30:
            assert time.monotonic() < deadline, (
                f"no decoded video: {await page.evaluate('window.viewer')} {first} {console}")
            assert app.alive(), app.log_text()[-3000:]
            await asyncio.sleep(0.5)
            first = await _stats(page)
        assert first["codec"] == "video/VP8", first
        assert first["width"] == 320, first
        await asyncio.sleep(3.0)
        later = await _stats(page)
        # it goes on decoding at about the camera's rate, and the video element plays
        assert later["framesDecoded"] >= first["framesDecoded"] + 30, (first, later)
        assert later["currentTime"] > first["currentTime"], (first, later)
        assert "sending vp8 video" in app.log_text()
        # and it hears the box: the Opus packets the box encoded itself, at the tone's level
        heard = await asyncio.wait_for(page.evaluate("window.audioStats()"), 10)
        await asyncio.sleep(2.0)
        heard_later = await asyncio.wait_for(page.evaluate("window.audioStats()"), 10)
        assert heard is not None and heard["codec"] == "audio/opus", heard
        played = heard_later["totalSamplesReceived"] - heard["totalSamplesReceived"]
        concealed = heard_later["concealedSamples"] - heard["concealedSamples"]
        assert played >= 48_000, (heard, heard_later)  # 2 s at 48 kHz, give or take
        assert concealed < 0.1 * played, (heard, heard_later)
        assert heard_later["audioLevel"] > 0.1, heard_later  # the -6 dBFS tone
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        await context.close()

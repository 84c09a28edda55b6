"""The VideoRoom demo that ships with Janus (``janus-demos``: ``videoroomtest.html`` on
``janus.js``), in headless Chromium, and the box in the same room: the client most
people first meet a Janus room with, driven as a person does (Start, a name, Join),
in a room configured as that demo's own room 1234.

The page and its scripts come from the installed package, unchanged; only
``settings.js`` (where the demo reads its server's address) is answered with this
test's Janus, over its WebSocket API.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Route

from tests.harness.fixtures import stock_room  # noqa: F401  (fixture)
from tests.harness.netns import Network
from tests.room.conftest import wait_tone
from tests.room.test_codecs import box_in  # noqa: F401  (fixture)
from tests.web.test_browser import ARGS, browser_in_netns

pytestmark = [pytest.mark.janus, pytest.mark.browser, pytest.mark.timeout(120)]

DEMOS = Path("/usr/share/janus/demos")
#: Where the page is served from (by the test itself, through the browser's request
#: routing: nothing listens there). A loopback origin is a secure context, where the demo
#: may open the camera, and Chromium lets it reach the room server's private address.
ORIGIN = "http://127.0.0.1:8765"
#: The demo's ``settings.js``, as a site sets it up: its Janus, no STUN or TURN server
#: (the room is on the LAN), no token or API secret. The demos read all four; the
#: packaged file declares only the first two.
SETTINGS = """var server = "{server}";
var iceServers = [];
var token = null;
var apisecret = null;
"""


@pytest.fixture
async def demo_browser(network: Network, tmp_path: Path) -> AsyncIterator[Browser]:
    """Debian's Chromium in a host of the test network, its fake camera on and a 700 Hz
    tone as its microphone."""
    from bench.bench_impaired import write_tone_wav

    if not (DEMOS / "videoroomtest.html").exists():
        pytest.fail("the janus-demos package is not installed (make deps)")
    wav = write_tone_wav(tmp_path / "tone700.wav", 700)
    args = [*ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required",
            # The page's origin is answered by the test (no address): Chromium would take
            # it for a public site and refuse it the room server's private address. A site
            # serves the demo from its LAN (the Janus host), where no check applies.
            "--disable-features=LocalNetworkAccessChecks"]
    async with browser_in_netns(network.add_host("demo").ns, tmp_path, args) as browser:
        yield browser


async def _open_demo(browser: Browser, janus_url: str, room: int) -> Page:
    """The demo page, served from the package (``settings.js``: this Janus)."""
    page = await browser.new_page()

    async def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN + "/").split("?")[0]
        if path == "settings.js":
            await route.fulfill(body=SETTINGS.format(server=janus_url),
                                content_type="application/javascript")
            return
        file = (DEMOS / path).resolve()
        if not file.is_file():
            await route.fulfill(status=404, body="")
            return
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        await route.fulfill(body=file.read_bytes(), content_type=kind)

    await page.route(f"{ORIGIN}/**", serve)
    await page.goto(f"{ORIGIN}/videoroomtest.html?room={room}")
    await page.click("#start")
    await page.fill("#username", "demo")
    await page.click("#register")
    return page


async def _remote_video_playing(page: Page) -> dict[str, Any]:
    return await page.evaluate("""() => {
        const v = [...document.querySelectorAll('[id^=videoremote] video')];
        return v.map((e) => ({w: e.videoWidth, h: e.videoHeight, t: e.currentTime}))[0]
               || null;
    }""")


async def test_the_janus_demo_and_the_box(demo_browser: Browser, box_in: Any,  # noqa: F811
                                          janus: Any, stock_room: int) -> None:  # noqa: F811
    box = box_in(stock_room)
    await asyncio.to_thread(box.run, box.session.join())
    page = await _open_demo(demo_browser, janus.url, stock_room)

    # the box hears the demo's microphone and sees it talking (the room does not say)
    await asyncio.to_thread(wait_tone, box.speaker, 700, timeout=30)
    members = box.session.members()
    assert [m.display for m in members] == ["demo"]
    for _ in range(50):
        if box.session.members()[0].talking:
            break
        await asyncio.sleep(0.2)
    assert box.session.members()[0].talking
    assert members[0].has_video  # the demo publishes its camera

    # the demo shows the box's video, moving
    first = None
    for _ in range(100):
        first = await _remote_video_playing(page)
        if first and first["w"] > 0 and first["t"] > 0.5:
            break
        await asyncio.sleep(0.3)
    assert first and first["w"] > 0 and first["h"] > 0, first
    await asyncio.sleep(1.5)
    later = await _remote_video_playing(page)
    assert later["t"] > first["t"] + 1.0, (first, later)
    # and its stream is the box's name, in the demo's own list of feeds
    names = await page.evaluate(
        "() => [...document.querySelectorAll('[id^=remote]')].map((e) => e.textContent)")
    assert any("box" in n for n in names), names

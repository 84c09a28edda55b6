"""A guest in the box's room from a browser: Chromium (in its own namespace, with a fake
microphone playing 880 Hz and a fake camera) opens the box's /room page with a guest
link and joins; the box's speaker plays the guest's tone, the guest's page plays the
box's 440 Hz tone and decodes the box's video; a revoked link is refused."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from playwright.async_api import Browser, async_playwright, expect

from services.web.passwords import reset
from tests.harness.netns import Network, NsLoop
from tests.room.conftest import wait_tone
from tests.web.test_browser import ARGS, CHROMIUM
from tests.web.test_browser_room import _until

pytestmark = [pytest.mark.browser, pytest.mark.janus, pytest.mark.timeout(240)]


def tone_wav(path: Path, freq: float) -> Path:
    t = np.arange(48000 * 4) / 48000
    samples = (0.4 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture
async def guest_browser(network: Network, tmp_path: Path) -> AsyncIterator[tuple[Browser, Any]]:
    host = network.add_host("guest")
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {host.ns} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    yield_args = {"wrapper": wrapper, "wav": tone_wav(tmp_path / "guest.wav", 880.0)}
    async with async_playwright() as p:
        async def launch(origin: str) -> Browser:
            return await asyncio.wait_for(p.chromium.launch(
                executable_path=str(wrapper),
                args=[*ARGS, "--use-fake-ui-for-media-stream",
                      "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={yield_args['wav']}",
                      "--autoplay-policy=no-user-gesture-required",
                      # a LAN page over http is no secure context (the box serves https
                      # with web.https = true; the test keeps to http)
                      f"--unsafely-treat-insecure-origin-as-secure={origin}"]), 60)
        yield launch, host  # type: ignore[misc]


async def admin_links(password: str) -> tuple[str, str]:
    """(a guest path, a revoked guest path), made through the admin API."""
    url = "http://127.0.0.1:8080"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(150):
            try:
                async with http.post(f"{url}/api/login", json={"password": password}) as r:
                    if r.status == 200:
                        csrf = (await r.json())["csrf_token"]
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        headers = {"X-CSRF-Token": csrf}
        paths = []
        for _ in range(2):
            async with http.post(f"{url}/api/guest-links", json={"ttl_seconds": 900},
                                 headers=headers) as r:
                paths.append(await r.json())
        async with http.delete(f"{url}/api/guest-links/{paths[1]['link']['id']}",
                               headers=headers) as r:
            assert r.status == 200
        return paths[0]["path"], paths[1]["path"]


PEAK = """async () => {
  const video = document.querySelector('#videos video');
  const ctx = new AudioContext();
  await ctx.resume();
  const source = ctx.createMediaStreamSource(video.srcObject);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  source.connect(analyser);
  await new Promise((r) => setTimeout(r, 1500));
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  ctx.close();
  return {hz: best * ctx.sampleRate / analyser.fftSize, db: bins[best]};
}"""


@pytest.mark.parametrize("kind", ["open", "members-only"])
async def test_a_guest_joins_with_a_link_and_hears_and_is_heard(
        make_appliance: Any, make_peer: Any, janus: Any, request: Any,
        guest_browser: tuple[Any, Any], tmp_path: Path, kind: str) -> None:
    # members-only: subscribing needs the private_id the room gave the guest (require_pvtid)
    room_number = request.getfixturevalue("room_number" if kind == "open" else "pvtid_room")
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"width": 320, "height": 240, "fps": 10},
        "web": {"listen": "0.0.0.0:8080"},
    }, start=False)
    password = reset(app.state_dir)
    app.start()
    loop = NsLoop(app.host)
    launch, _ = guest_browser
    origin = f"http://{app.host.ip}:8080"
    browser = await launch(origin)
    try:
        good, revoked = await asyncio.to_thread(loop.run, admin_links(password), 60)
        page = await (await browser.new_context(viewport={"width": 390, "height": 844})
                      ).new_page()
        # a revoked link: the page says it cannot join
        await page.goto(f"{origin}{revoked}")
        await page.fill("#name", "Eve")
        await page.click("#join-form button[type=submit]")
        await expect(page.locator("#room-error")).to_contain_text("cannot be reached")
        # the good link: in the room, with the box listed
        await page.goto(f"{origin}{good}")
        await page.fill("#name", "Ann")
        await page.click("#join-form button[type=submit]")
        await expect(page.locator("#room-view")).to_be_visible(timeout=30_000)
        await expect(page.locator("#room-members li", has_text="box")).to_be_visible(
            timeout=30_000)
        # the box's video decodes in the guest's page
        video = "document.querySelector('#videos video')"
        await _until(page, f"!!{video} && {video}.videoWidth === 320 && "
                           f"{video}.currentTime > 1", timeout=60)
        # the guest hears the box's tone, the box's speaker plays the guest's
        peak = await page.evaluate(PEAK)
        assert abs(peak["hz"] - 440) < 15 and peak["db"] > -70, peak
        await asyncio.to_thread(wait_tone, app.speaker_wav, 880, True, 40.0)
        # messages both ways, and a raised hand the room sees
        watch = make_peer("watch", room_number, tone=None)
        await watch.acall(lambda s: s.join())
        await expect(page.locator("#chat")).to_be_visible()
        await page.fill("#message-text", "hello from Ann")
        await page.click("#message-form button[type=submit]")
        said = await asyncio.to_thread(watch.wait_event, "message",
                                       lambda d: d["text"] == "hello from Ann", 20.0)
        assert said["display"] == "Ann"
        await watch.acall(lambda s: s.send_text("hi Ann"))
        await expect(page.locator("#messages li", has_text="hi Ann")).to_be_visible()
        await page.click("#hand")
        await asyncio.to_thread(watch.wait_event, "hand",
                                lambda d: d["id"] == said["from"] and d["raised"], 20.0)
        await page.screenshot(path=tmp_path / "guest-room.png", full_page=True)
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        await browser.close()
        loop.close()

"""The page's level meter holds the shared mic open exactly while its stream is open."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from drivers.audio.sim import SimMic
from services.media.audio import MicTee
from tests.harness.polling import wait_until
from tests.web.conftest import TIMEOUT, Served, http, login, served  # noqa: F401  (fixtures)


async def test_level_meter_stream_opens_and_releases_the_mic(
        served: Served, http: aiohttp.ClientSession, tmp_path) -> None:  # noqa: F811
    await login(http, served)
    async with http.get(f"{served.url}/api/mic-level") as r:
        assert r.status == 404 and (await r.json())["error"] == "NO_MIC"
    tee = MicTee(lambda: SimMic("tone:440", state_dir=tmp_path), emit=served.appliance.bus.publish)
    served.appliance.extras["mic_users"] = tee
    opened = []
    served.appliance.bus.add_listener(
        lambda ev: opened.append(ev.data["open"]) if ev.name == "mic-open" else None)
    try:
        assert not tee.is_open
        async with http.get(f"{served.url}/api/mic-level") as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            await asyncio.wait_for(stream.content.readuntil(b"\n\n"), TIMEOUT)
            assert tee.is_open and len(tee.users) == 1
            assert tee.users[0].startswith("page-meter:")
            served.appliance.bus.publish("mic-level", {"level_dbfs": -12.0})
            served.appliance.bus.publish("member-joined", {"id": "1"})  # not on this stream
            served.appliance.bus.publish("mic-level", {"level_dbfs": -11.0})
            frames = [(await asyncio.wait_for(stream.content.readuntil(b"\n\n"), TIMEOUT))
                      .decode() for _ in range(2)]
        names = [dict(ln.split(": ", 1) for ln in f.strip().splitlines())["event"]
                 for f in frames]
        assert names == ["mic-level", "mic-level"]
        assert json.loads(frames[1].split("data: ", 1)[1])["data"] == {"level_dbfs": -11.0}
        # the page closed its stream: the capture device is released
        await wait_until(lambda: not tee.is_open, TIMEOUT, 0.01)
        assert tee.users == [] and opened == [True, False]
    finally:
        await asyncio.wait_for(tee.close(), TIMEOUT)

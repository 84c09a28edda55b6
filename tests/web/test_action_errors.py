"""Failures become action errors with stable codes on every surface, and POST /api/audio
applies all of its changes or none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from device import __version__
from drivers.errors import DeviceError
from services.media.encoder import EncoderError
from services.media.mux import MuxError
from services.media.recorder import DiskFull
from services.serial_control import ControlSession
from tests.media.helpers import Events, make_service
from tests.web.conftest import TIMEOUT, FakeMedia, Served, login


def serial_of(served: Served) -> ControlSession:
    app = served.appliance
    return ControlSession(app.dispatcher.dispatch, app.status, __version__,
                          rate=1e9, burst=10**9)


async def ask(session: ControlSession, line: str) -> str:
    [reply] = await asyncio.wait_for(session.handle(line.encode()), TIMEOUT)
    return str(reply)


class FailingMedia(FakeMedia):
    """Recording and streaming whose start fails the way the media pipeline can."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def start_recording(self) -> dict[str, Any]:
        raise self.error

    async def start_stream(self, url: str | None = None) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(("error", "code"), [
    (MuxError("cannot open flv output: Connection refused"), "OUTPUT_ERROR"),
    (EncoderError("no H.264 encoder could be opened: libx264: gone"), "ENCODER_ERROR"),
    (DiskFull("12 MB free, record.min_free_mb is 200"), "DISK_FULL"),
    (OSError(28, "No space left on device"), "OUTPUT_ERROR"),
    (RuntimeError("media service is closed"), "MEDIA_ERROR"),
])
async def test_media_errors_are_action_errors_over_http_and_serial(
        served: Served, http: aiohttp.ClientSession, error: Exception, code: str) -> None:
    served.appliance.dispatcher.media = FailingMedia(error)
    h = {"X-CSRF-Token": await login(http, served)}
    for path, body in (("/api/record", {"state": "start"}),
                       ("/api/stream", {"state": "start", "url": "rtmp://media/live/k"}),
                       ("/api/actions/record", {"state": "start"})):
        async with http.post(f"{served.url}{path}", json=body, headers=h) as r:
            data = await r.json()
            assert r.status == 503, data
            assert data["error"] == code and str(error) in data["message"], data
    serial = serial_of(served)
    for line in ("RECORD START", "STREAM START rtmp://media/live/k"):
        reply = await ask(serial, line)
        assert reply.startswith(f"ERR {code} "), reply
        assert "INTERNAL" not in reply


async def test_a_real_media_service_that_cannot_record(served: Served,
                                                        http: aiohttp.ClientSession,
                                                        tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the recordings directory should be")
    media = make_service(tmp_path, Events(), record_dir=blocker / "recordings")
    served.appliance.dispatcher.media = media
    try:
        h = {"X-CSRF-Token": await login(http, served)}
        async with http.post(f"{served.url}/api/record", json={"state": "start"},
                             headers=h) as r:
            data = await r.json()
            assert r.status == 503 and data["error"] == "OUTPUT_ERROR", data
        assert (await ask(serial_of(served), "RECORD START")).startswith("ERR OUTPUT_ERROR ")
    finally:
        await asyncio.wait_for(media.close(), TIMEOUT)
    # a closed service: still an action error, never INTERNAL
    assert (await ask(serial_of(served), "RECORD START")).startswith("ERR MEDIA_ERROR ")


async def test_audio_is_all_or_none(served: Served, http: aiohttp.ClientSession) -> None:
    h = {"X-CSRF-Token": await login(http, served)}
    room = served.room
    before = room.controls.to_dict()
    # one bad field: nothing changes
    for body in ({"mic_enabled": False, "speaker_volume": 101},
                 {"mic_enabled": False, "deaf": "yes"},
                 {"mic_enabled": False, "mic_volume": -1}):
        async with http.post(f"{served.url}/api/audio", json=body, headers=h) as r:
            data = await r.json()
            assert r.status == 400 and data["error"] == "BAD_ARGUMENT", data
        assert room.controls.to_dict() == before
    # a change that fails half-way: the ones before it are put back
    calls: list[int] = []

    async def speaker_gone(percent: int) -> None:
        calls.append(percent)
        raise DeviceError("speaker: the device went away")

    room.set_speaker_volume = speaker_gone  # type: ignore[method-assign]
    body = {"mic_enabled": False, "speaker_enabled": False, "mic_volume": 40,
            "speaker_volume": 30, "deaf": True}
    async with http.post(f"{served.url}/api/audio", json=body, headers=h) as r:
        data = await r.json()
        assert r.status == 503 and data["error"] == "DEVICE_ERROR", data
    assert calls == [30]
    assert room.controls.to_dict() == before
    # and all of it when it all works
    del room.set_speaker_volume
    async with http.post(f"{served.url}/api/audio", json=body, headers=h) as r:
        assert r.status == 200, await r.text()
        result = (await r.json())["result"]
    assert set(result) == {"mic", "speaker", "mic_volume", "speaker_volume", "deaf"}
    c = room.controls
    assert (c.mic_enabled, c.speaker_enabled, c.mic_volume, c.speaker_volume, c.deaf) == \
        (False, False, 40, 30, True)

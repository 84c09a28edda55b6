"""Playbacks and announcements between two whole appliances on a real Janus."""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from tests.harness.api_client import ApiClient
from tests.harness.appliance import ApplianceProcess
from tests.harness.audio import rms, tone_power, wav_tail
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(150)]


def write_tone(path: Path, freq: float, seconds: float, amplitude: float = 0.3) -> Path:
    t = np.arange(int(48_000 * seconds)) / 48_000
    pcm = (amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(pcm.tobytes())
    return path


def box(make_appliance: Any, janus: Any, room: int, name: str, mic: str) -> ApplianceProcess:
    app: ApplianceProcess = make_appliance(name, {
        "room": {"server": janus.url, "room": room, "display_name": name},
        "sim": {"mic": mic},
        "video": {"enabled": False, "receive": False},
        "web": {"listen": "0.0.0.0:8080"},
    })
    return app


def wait_events(app: ApplianceProcess, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in app.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in the log of {app.host.name}"
        time.sleep(0.1)


def test_a_playback_into_the_room_is_heard_while_the_mic_keeps_flowing(
        make_appliance, janus, room_number, network):
    a = box(make_appliance, janus, room_number, "boxa", "tone:440")
    b = box(make_appliance, janus, room_number, "boxb", "silence")
    write_tone(a.state_dir / "sounds" / "chime.wav", 1200, 6.0)
    api = ApiClient(network, a, "client")
    try:
        wait_tone(b.speaker_wav, 440, timeout=40)
        api.login()
        # A's talking detector, fed by its mic's frames in the room, follows its mic.
        local = lambda d: d["id"] == "local"  # noqa: E731
        assert api.wait_event("talking", local, ("POST", "/api/audio", {"mic_volume": 0}))[
            "talking"] is False
        assert api.wait_event("talking", local, ("POST", "/api/audio", {"mic_volume": 100}))[
            "talking"] is True
        status, body = api.call("POST", "/api/playbacks",
                                {"file": "sounds/chime.wav", "destination": "room"})
        assert status == 200, body
        playback = body["result"]
        assert playback["destination"] == "room" and playback["state"] == "playing"
        # B hears the chime and A's mic tone together.
        wait_tone(b.speaker_wav, 1200, timeout=10, threshold=0.2)
        tail = wav_tail(b.speaker_wav, 1.0)
        assert tone_power(tail, 440) > 0.1, "A's mic tone stopped while the chime played"
        status, listed = api.call("GET", "/api/playbacks")
        assert status == 200 and [p["id"] for p in listed["playbacks"]] == [playback["id"]]
        # A's own speaker does not play a room-only playback.
        assert rms(wav_tail(a.speaker_wav, 1.0)) < 0.001  # B sends silence
        # Pause: the chime stops, the mic goes on; resume, then stop.
        status, body = api.call("PATCH", f"/api/playbacks/{playback['id']}",
                                {"state": "paused"})
        assert status == 200 and body["result"]["state"] == "paused", body
        wait_tone(b.speaker_wav, 1200, present=False, window=0.5, threshold=0.2)
        assert tone_power(wav_tail(b.speaker_wav, 0.5), 440) > 0.1
        status, body = api.call("PATCH", f"/api/playbacks/{playback['id']}",
                                {"state": "playing"})
        assert status == 200, body
        wait_tone(b.speaker_wav, 1200, timeout=10, threshold=0.2)
        status, body = api.call("DELETE", f"/api/playbacks/{playback['id']}")
        assert status == 200 and body["result"]["state"] == "ended", body
        wait_tone(b.speaker_wav, 1200, present=False, window=0.5, threshold=0.2)
        status, body = api.call("DELETE", f"/api/playbacks/{playback['id']}")
        assert status == 404 and body["error"] == "NO_SUCH_PLAYBACK", body
        status, body = api.call("POST", "/api/playbacks", {"file": "../../etc/passwd"})
        assert status == 400, body
        assert a.alive() and b.alive()
    except AssertionError:
        print(a.log_text()[-4000:])
        raise
    finally:
        api.close()


def test_an_announcement_from_another_member_is_heard_on_the_speaker(
        make_appliance, janus, room_number, network, tmp_path):
    a = box(make_appliance, janus, room_number, "boxa", "silence")
    b = box(make_appliance, janus, room_number, "boxb", "silence")
    sound = write_tone(tmp_path / "served" / "doorbell.wav", 1500, 3.0)
    api_b = ApiClient(network, b, "client")
    # The sound is served by a host of the test network.
    async def doorbell(request: web.Request) -> web.FileResponse:
        return web.FileResponse(sound)

    app = web.Application()
    app.router.add_get("/doorbell.wav", doorbell)
    runner = web.AppRunner(app)

    async def serve() -> None:
        await runner.setup()
        await web.TCPSite(runner, api_b.loop.host.ip, 8099).start()

    api_b.loop.run(serve())
    try:
        api_b.login()
        deadline = time.monotonic() + 40
        while True:  # both in the room, each seeing the other
            status, st = api_b.call("GET", "/api/status")
            if st["room"]["state"] == "in_room" and \
                    any(m["display"] == "boxa" for m in st["room"]["members"]):
                break
            assert time.monotonic() < deadline, st["room"]
            time.sleep(0.3)
        wait_events(a, "room: joining -> in_room", timeout=40)
        while not a.speaker_wav.exists():  # the speaker starts with the first stay
            assert time.monotonic() < deadline, "A's speaker never started"
            time.sleep(0.1)
        assert rms(wav_tail(a.speaker_wav, 1.0)) < 0.001
        url = f"http://{api_b.loop.host.ip}:8099/doorbell.wav"
        status, body = api_b.call("POST", "/api/actions/custom",
                                  {"cmd": "announce", "payload": {"url": url}})
        assert status == 200, body
        wait_tone(a.speaker_wav, 1500, timeout=15, threshold=0.3)
        wait_events(a, "playback pb1 ended (finished)", timeout=15)
        # Nothing of it went to the room: B's speaker stayed quiet.
        assert rms(wav_tail(b.speaker_wav, 4.0)) < 0.001
        assert a.alive() and b.alive()
    except AssertionError:
        print(a.log_text()[-4000:])
        raise
    finally:
        api_b.loop.run(runner.cleanup())
        api_b.close()

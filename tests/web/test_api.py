"""The HTTP API against an in-process appliance: auth, config, controls, events."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import tomllib

import aiohttp
from yarl import URL

from device.config import REDACTED
from services.room.api import Member
from services.web import WebServer
from services.web.passwords import reset
from tests.web.conftest import TIMEOUT, FakeButtons, Served, client, login, make_appliance


async def test_health_reveals_nothing(served: Served, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{served.url}/api/health") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok"}
        assert r.headers["Server"] == "edgeroom"
        assert "0.1" not in json.dumps(dict(r.headers))


async def test_login_sets_strict_httponly_cookie(served: Served,
                                                 http: aiohttp.ClientSession) -> None:
    async with http.post(f"{served.url}/api/login", json={"password": served.password}) as r:
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP
        assert len((await r.json())["csrf_token"]) >= 32
    async with http.get(f"{served.url}/api/status") as r:
        assert r.status == 200
        status = await r.json()
        assert status["state"] == "idle" and status["sim"] is True


async def test_login_rotates_the_session(served: Served, http: aiohttp.ClientSession) -> None:
    await login(http, served)
    first = http.cookie_jar.filter_cookies(URL(served.url))["edgeroom_session"].value
    await login(http, served)
    second = http.cookie_jar.filter_cookies(URL(served.url))["edgeroom_session"].value
    assert first != second
    async with client() as other:
        other.cookie_jar.update_cookies({"edgeroom_session": first})
        async with other.get(f"{served.url}/api/status") as r:
            assert r.status == 401  # the pre-login token no longer works


async def test_wrong_password_is_401(served: Served, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{served.url}/api/login", json={"password": "nope"}) as r:
        assert r.status == 401
        assert (await r.json())["error"] == "WRONG_PASSWORD"


async def test_bad_bodies_get_reasons(served: Served, http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    h = {"X-CSRF-Token": csrf}
    cases = [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "JSON object"),
        (b'{"enabled": "yes"}', "application/json", 400, "enabled must be true or false"),
        (b'{"enabled": true, "x": 1}', "application/json", 400, "unknown field 'x'"),
        (b'{"enabled": NaN}', "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "UTF-8"),
        (b"enabled=1", "application/x-www-form-urlencoded", 415, "application/json"),
        (b"{" + b" " * 70_000 + b"}", "application/json", 413, "larger than"),
    ]
    for body, ctype, status, reason in cases:
        async with http.post(f"{served.url}/api/video", data=body,
                             headers={**h, "Content-Type": ctype}) as r:
            data = await r.json()
            assert r.status == status, (body[:20], data)
            assert reason in data["message"], data
    async with http.get(f"{served.url}/api/logs?lines=abc") as r:
        assert r.status == 400
    async with http.get(f"{served.url}/api/nothing-here") as r:
        assert r.status == 404
        assert "error" in await r.json()


async def test_config_patch_saves_and_reports_field_errors(served: Served,
                                                           http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    h = {"X-CSRF-Token": csrf}
    async with http.get(f"{served.url}/api/config") as r:
        view = await r.json()
    keys = {row["key"] for row in view["schema"]}
    assert {"room.server", "web.listen", "audio.aec", "stream.rtmp_url"} <= keys
    patch = {"room": {"room": 42, "pin": "1234"}, "audio": {"aec": False}}
    async with http.patch(f"{served.url}/api/config", json=patch, headers=h) as r:
        assert r.status == 200, await r.text()
        saved = await r.json()
    assert saved["config"]["room"]["pin"] == REDACTED
    assert saved["restart"] == ["room"] and saved["pending"] is False
    on_disk = tomllib.loads(served.appliance.config_path.read_text())
    assert on_disk["room"]["room"] == 42 and on_disk["room"]["pin"] == "1234"
    assert on_disk["audio"]["aec"] is False
    # The redacted value sent back means "unchanged".
    async with http.patch(f"{served.url}/api/config", headers=h,
                          json={"room": {"pin": REDACTED, "display_name": "desk"}}) as r:
        assert r.status == 200
    assert served.appliance.config.room.pin == "1234"
    assert served.appliance.config.room.display_name == "desk"
    # Every bad field is named.
    bad = {"room": {"room": 0, "backend": "nope"}, "audio": {"mic_volume": "loud"},
           "nosuch": {}}
    async with http.patch(f"{served.url}/api/config", json=bad, headers=h) as r:
        assert r.status == 400
        data = await r.json()
    assert {e["key"] for e in data["errors"]} == {"room.room", "room.backend",
                                                  "audio.mic_volume", "nosuch"}
    assert all(e["message"] for e in data["errors"])
    assert served.appliance.config.room.room == 42  # nothing applied


async def test_room_controls_go_through_the_dispatcher(served: Served,
                                                       http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    h = {"X-CSRF-Token": csrf}
    url = served.url
    async with http.post(f"{url}/api/hand", json={"raised": True}, headers=h) as r:
        assert r.status == 409 and (await r.json())["error"] == "NOT_IN_ROOM"
    async with http.post(f"{url}/api/room/join", json={}, headers=h) as r:
        assert r.status == 200, await r.text()
    for _ in range(100):
        if served.room.state == "in_room":
            break
        await asyncio.sleep(0.02)
    assert served.appliance.state.state == "in_room"
    async with http.post(f"{url}/api/audio", headers=h,
                         json={"mic_enabled": False, "speaker_volume": 30}) as r:
        assert r.status == 200, await r.text()
    assert served.room.controls.mic_enabled is False
    assert served.room.controls.speaker_volume == 30
    async with http.post(f"{url}/api/room/message", json={"text": "hello"}, headers=h) as r:
        assert r.status == 200
    assert served.room.sent == [("hello", None)]
    async with http.post(f"{url}/api/members/ghost/mute", json={"muted": True},
                         headers=h) as r:
        assert r.status == 404 and (await r.json())["error"] == "NO_SUCH_MEMBER"
    served.room.add_member(Member("7", "Ada"))
    async with http.post(f"{url}/api/members/7/mute", json={"muted": True}, headers=h) as r:
        assert r.status == 200
    assert "7" in served.room.controls.muted_members
    async with http.post(f"{url}/api/record", json={"state": "start"}, headers=h) as r:
        assert r.status == 503 and (await r.json())["error"] == "UNAVAILABLE"
    async with http.get(f"{url}/api/status") as r:
        status = await r.json()
    assert status["room"]["members"][0]["locally_muted"] is True
    assert status["stats"]["up"]["bitrate_kbps"] == 512.0
    async with http.get(f"{url}/metrics") as r:
        text = await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'edgeroom_state{state="in_room"} 1' in text
    assert "edgeroom_room_members 1" in text
    assert 'edgeroom_stats_member_bitrate_kbps{member="7"} 400' in text
    assert "edgeroom_stats_up_bitrate_kbps 512" in text
    async with http.post(f"{url}/api/room/leave", json={}, headers=h) as r:
        assert r.status == 200
    assert served.room.state == "idle"


async def test_no_room_client_is_503(tmp_path: object) -> None:
    from pathlib import Path

    appliance = make_appliance(Path(str(tmp_path)), room=False)
    password = await asyncio.to_thread(reset, appliance.state_dir)
    async with WebServer(appliance) as server, client() as http:
        served = Served(appliance, server, password)
        csrf = await login(http, served)
        async with http.post(f"{server.url}/api/room/join", json={},
                             headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 503
            assert "room client is not running" in (await r.json())["message"]


async def test_event_stream_carries_bus_events(served: Served,
                                               http: aiohttp.ClientSession) -> None:
    await login(http, served)
    async with http.get(f"{served.url}/api/events") as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), TIMEOUT)
        assert b"retry:" in first
        served.appliance.bus.publish("member-joined", {"id": "9", "display": "Grace"})
        frame = (await asyncio.wait_for(r.content.readuntil(b"\n\n"), TIMEOUT)).decode()
    fields = dict(line.split(": ", 1) for line in frame.strip().splitlines())
    assert fields["event"] == "member-joined"
    assert json.loads(fields["data"])["data"] == {"id": "9", "display": "Grace"}


async def test_logs_camera_buttons(served: Served, http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    async with http.get(f"{served.url}/api/logs?lines=50") as r:
        lines = (await r.json())["lines"]
    assert isinstance(lines, list) and len(lines) <= 50
    async with http.get(f"{served.url}/api/camera.jpg") as r:
        assert r.status == 404 and "snapshot provider" in (await r.json())["message"]

    class Camera:
        def __init__(self) -> None:
            self.jpeg: bytes | None = None

        async def snapshot_jpeg(self) -> bytes | None:
            return self.jpeg

    camera = Camera()
    served.appliance.extras["snapshot"] = camera
    async with http.get(f"{served.url}/api/camera.jpg") as r:
        assert r.status == 503
    camera.jpeg = b"\xff\xd8fake\xff\xd9"
    async with http.get(f"{served.url}/api/camera.jpg") as r:
        assert r.status == 200 and r.content_type == "image/jpeg"
        assert await r.read() == camera.jpeg
    h = {"X-CSRF-Token": csrf}
    async with http.post(f"{served.url}/api/buttons/mute", json={"action": "click"},
                         headers=h) as r:
        assert r.status == 503
    panel = FakeButtons()
    served.appliance.extras["buttons"] = panel
    async with http.post(f"{served.url}/api/buttons/mute", json={"action": "click"},
                         headers=h) as r:
        assert r.status == 200
    async with http.post(f"{served.url}/api/buttons/nope", json={"action": "press"},
                         headers=h) as r:
        assert r.status == 404
    assert panel.pressed == [("mute", "press"), ("mute", "release")]
    async with http.get(f"{served.url}/api/status") as r:
        status = await r.json()
    assert status["virtual_buttons"] == ["call", "mute"] and status["camera_preview"] is True


async def test_https_with_a_per_device_certificate(tmp_path: object) -> None:
    from pathlib import Path

    appliance = make_appliance(Path(str(tmp_path)))
    password = await asyncio.to_thread(reset, appliance.state_dir)
    async with WebServer(appliance, https=True) as server:
        assert server.url.startswith("https://")
        key = appliance.state_dir / "tls-key.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        ctx = ssl.create_default_context(cafile=appliance.state_dir / "tls-cert.pem")
        conn = aiohttp.TCPConnector(ssl=ctx)
        async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.CookieJar(
                unsafe=True)) as http:
            async with http.post(f"{server.url}/api/login", json={"password": password}) as r:
                assert r.status == 200
                assert "Secure" in r.headers["Set-Cookie"]
                assert "max-age" in r.headers["Strict-Transport-Security"]
    cert_before = (appliance.state_dir / "tls-cert.pem").read_bytes()
    async with WebServer(appliance, https=True):
        pass
    assert (appliance.state_dir / "tls-cert.pem").read_bytes() == cert_before  # kept


async def test_log_tail_hides_the_first_start_password(served: Served,
                                                       http: aiohttp.ClientSession) -> None:
    from device import logs

    logs.RING.lines.append("WARNING services.web.server: config page admin password "
                           "(shown only this once): abcd-efgh-jkmn-pqrs")
    await login(http, served)
    async with http.get(f"{served.url}/api/logs?lines=5") as r:
        lines = (await r.json())["lines"]
    shown = [line for line in lines if "shown only this once" in line]
    assert shown and all(line.endswith("once): (hidden)") for line in shown)
    assert not any("abcd-efgh" in line for line in lines)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_metrics_take_basic_auth_for_scrapers(served: Served) -> None:
    url = f"{served.url}/metrics"
    async with client() as http:
        async with http.get(url, headers=_basic("admin", served.password)) as r:
            assert r.status == 200
            assert "edgeroom_state" in await r.text()
        async with http.get(url, headers=_basic("admin", "wrong")) as r:
            assert r.status == 401
        async with http.get(f"{served.url}/api/status",
                            headers=_basic("admin", served.password)) as r:
            assert r.status == 401  # Basic auth is for /metrics only


async def test_camera_preview_from_frames(served: Served, http: aiohttp.ClientSession) -> None:
    import io

    import av
    import numpy as np

    from services.web.snapshot import JpegSnapshot

    snapshot = JpegSnapshot()
    served.appliance.extras["snapshot"] = snapshot
    await login(http, served)
    async with http.get(f"{served.url}/api/camera.jpg") as r:
        assert r.status == 503  # no frame yet
    pixels = np.zeros((480, 1280, 3), dtype=np.uint8)
    pixels[:, :640] = (220, 20, 20)
    snapshot.offer(av.VideoFrame.from_ndarray(pixels, format="rgb24"))
    async with http.get(f"{served.url}/api/camera.jpg") as r:
        assert r.status == 200
        jpeg = await r.read()
    with av.open(io.BytesIO(jpeg), mode="r", format="mjpeg") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (640, 240)  # scaled to the preview width
    left, right = frame.to_ndarray(format="rgb24")[120, [100, 500]]
    assert left[0] > 180 and left[1] < 60 and right.max() < 40


async def test_openapi_lists_exactly_the_served_routes(served: Served,
                                                       http: aiohttp.ClientSession) -> None:
    from services.web.server import build_app

    await login(http, served)
    async with http.get(f"{served.url}/api/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    app = build_app(served.server.context)
    served_routes = {(route.method, route.resource.canonical)
                     for route in app.router.routes()
                     if route.resource is not None and route.method != "HEAD"
                     and not route.resource.canonical.startswith("/static")
                     and route.resource.canonical != "/"}
    assert served_routes == documented
    for item in doc["paths"].values():
        for op in item.values():
            assert "200" in op["responses"] and op["summary"]


async def test_secrets_never_leave_through_status_events_or_logs(
        served: Served, http: aiohttp.ClientSession) -> None:
    from device import logs

    url = "rtmp://live.example/app/s3cr3t-stream-key"
    csrf = await login(http, served)
    async with http.patch(f"{served.url}/api/config", headers={"X-CSRF-Token": csrf},
                          json={"stream": {"rtmp_url": url}, "room": {"pin": "987654"}}) as r:
        assert r.status == 200
    served.appliance.status_providers.add(
        "media", lambda: {"stream": {"url": url, "state": "live"}})
    logs.RING.lines.append(f"INFO services.media.rtmp: pushing to {url} (pin 987654)")
    async with http.get(f"{served.url}/api/events") as stream:
        await asyncio.wait_for(stream.content.readuntil(b"\n\n"), TIMEOUT)
        served.appliance.bus.publish("action", {"action": "stream", "args": {"url": url}})
        frame = (await asyncio.wait_for(stream.content.readuntil(b"\n\n"), TIMEOUT)).decode()
    async with http.get(f"{served.url}/api/status") as r:
        status_text = await r.text()
        assert json.loads(status_text)["media"]["stream"]["url"] == REDACTED
    async with http.get(f"{served.url}/api/logs") as r:
        logs_text = await r.text()
    async with http.get(f"{served.url}/api/config") as r:
        config_text = await r.text()
    for text in (frame, status_text, logs_text, config_text):
        assert "s3cr3t" not in text and "987654" not in text
    assert REDACTED in frame and REDACTED in logs_text


async def test_camera_offer_answers_with_h264_and_limits_peers(
        served: Served, http: aiohttp.ClientSession) -> None:
    from aiortc import RTCPeerConnection, VideoStreamTrack

    from services.web.preview import CameraPreview

    async def offer(kind: str = "video") -> tuple[RTCPeerConnection, str]:
        pc = RTCPeerConnection()
        pc.addTransceiver(kind, direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc, pc.localDescription.sdp

    csrf = await login(http, served)
    h = {"X-CSRF-Token": csrf}
    url = f"{served.url}/api/camera/offer"
    browser, sdp = await asyncio.wait_for(offer(), TIMEOUT)
    audio_only, audio_sdp = await asyncio.wait_for(offer("audio"), TIMEOUT)
    preview = CameraPreview(VideoStreamTrack)
    try:
        async with http.post(url, json={"sdp": sdp, "type": "offer"}, headers=h) as r:
            assert r.status == 404 and (await r.json())["error"] == "NO_CAMERA_PREVIEW"
        served.appliance.extras["preview"] = preview
        async with http.get(f"{served.url}/api/status") as r:
            assert (await r.json())["camera_webrtc"] is True
        for body, reason in (({"sdp": "not an offer", "type": "offer"}, "sdp"),
                             ({"sdp": audio_sdp, "type": "offer"}, "video section"),
                             ({"sdp": sdp, "type": "answer"}, "type"),
                             ({"sdp": sdp}, "type")):
            async with http.post(url, json=body, headers=h) as r:
                assert r.status == 400, body
                assert reason in (await r.json())["message"]
        assert preview.peers == 0
        async with http.post(url, json={"sdp": sdp, "type": "offer"}, headers=h) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        assert answer["type"] == "answer" and "H264" in answer["sdp"]
        assert "VP8" not in answer["sdp"] and "a=sendonly" in answer["sdp"]
        async with http.post(url, json={"sdp": sdp, "type": "offer"}, headers=h) as r:
            assert r.status == 200  # the same session's new preview replaces its old one
        assert preview.peers == 1 and preview.opened == 2
        async with client() as second, client() as third:
            csrf2 = await login(second, served)
            async with second.post(url, json={"sdp": sdp, "type": "offer"},
                                   headers={"X-CSRF-Token": csrf2}) as r:
                assert r.status == 200
            csrf3 = await login(third, served)
            async with third.post(url, json={"sdp": sdp, "type": "offer"},
                                  headers={"X-CSRF-Token": csrf3}) as r:
                assert r.status == 503 and (await r.json())["error"] == "PREVIEW_BUSY"
            assert preview.peers == 2
            # the session ends: its preview closes
            async with second.post(f"{served.url}/api/logout", json={},
                                   headers={"X-CSRF-Token": csrf2}) as r:
                assert r.status == 200
            for _ in range(100):
                if preview.peers == 1:
                    break
                await asyncio.sleep(0.1)
            assert preview.peers == 1
    finally:
        await asyncio.wait_for(preview.close(), TIMEOUT)
        await browser.close()
        await audio_only.close()
    assert preview.peers == 0

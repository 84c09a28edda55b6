"""The whole appliance with ``display.backend = "sim"``: the screen's tiles follow the
room (joins, talking, leaves), the layout and pin actions change it, and the page gets
its picture, in which a remote camera's strip is readable."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import av
import pytest

from drivers.camera.strip import decode_strip
from services.web.passwords import reset
from tests.harness.netns import NsLoop

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]

URL = "http://127.0.0.1:8080"


class Page:
    """A logged-in client of the appliance's page, inside the appliance's namespace."""

    def __init__(self, loop: NsLoop, password: str) -> None:
        self.loop = loop
        self.password = password
        self.http: aiohttp.ClientSession | None = None
        self.csrf = ""

    def _run(self, coro: Any, timeout: float = 20.0) -> Any:
        return self.loop.run(coro, timeout)

    def login(self, timeout: float = 40.0) -> None:
        async def go() -> None:
            self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            deadline = time.monotonic() + timeout
            while True:
                try:
                    async with self.http.post(f"{URL}/api/login",
                                              json={"password": self.password}) as r:
                        if r.status == 200:
                            self.csrf = (await r.json())["csrf_token"]
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("the page never answered a login")
                await asyncio.sleep(0.3)

        self._run(go(), timeout + 5)

    def get(self, path: str) -> tuple[int, bytes]:
        async def go() -> tuple[int, bytes]:
            assert self.http is not None
            async with self.http.get(f"{URL}{path}") as r:
                return r.status, await r.read()

        result: tuple[int, bytes] = self._run(go())
        return result

    def status(self) -> dict[str, Any]:
        import json

        code, body = self.get("/api/status")
        assert code == 200, body[:300]
        data: dict[str, Any] = json.loads(body)
        return data

    def act(self, name: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async def go() -> tuple[int, dict[str, Any]]:
            assert self.http is not None
            async with self.http.post(f"{URL}/api/actions/{name}", json=args,
                                      headers={"X-CSRF-Token": self.csrf}) as r:
                return r.status, await r.json()

        result: tuple[int, dict[str, Any]] = self._run(go())
        return result

    def close(self) -> None:
        if self.http is not None:
            self._run(self.http.close())


def wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def tiles(page: Page) -> list[dict[str, Any]]:
    display: dict[str, Any] = page.status()["display"]
    result: list[dict[str, Any]] = display["tiles"]
    return result


def test_the_screen_follows_the_room_and_the_page_sees_it(make_appliance: Any, make_peer: Any,
                                                          janus: Any, room_number: int) -> None:
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "silence"},
        "video": {"enabled": False},
        "display": {"backend": "sim", "resolution": "640x240", "layout": "grid"},
        "web": {"listen": "127.0.0.1:8080"},
    }, start=False)
    password = reset(app.state_dir)
    app.start()
    loop = NsLoop(app.host)
    page = Page(loop, password)
    try:
        page.login()
        status = page.status()
        assert status["display"]["backend"] == "sim", status["display"]
        wait(lambda: page.status()["room"]["state"] == "in_room", "the box in the room")
        assert tiles(page) == []
        # a member joins, with a camera and a tone: a tile, its picture, its talking ring
        cam = make_peer("cam", room_number, tone="tone:440", camera=True)
        cam.call(lambda s: s.join())
        cam_id = cam.session.local_id
        (tile,) = wait(lambda: tiles(page), "the member's tile")
        assert (tile["id"], tile["name"], tile["w"], tile["h"]) == (cam_id, "cam", 640, 240)
        wait(lambda: tiles(page)[0]["talking"], "the talking ring")
        # the sim screen's picture, as the page gets it: the camera's strip survives
        def strip() -> Any:
            code, body = page.get("/api/display.jpg")
            assert code == 200 and body[:2] == b"\xff\xd8", (code, body[:200])
            with av.open(io.BytesIO(body)) as container:
                frame = next(container.decode(video=0))
            assert (frame.width, frame.height) == (640, 240)
            middle = frame.to_ndarray(format="rgb24")[:, 160:480]
            return decode_strip(middle)
        first = wait(strip, "a readable strip on the screen", timeout=40)
        later = wait(lambda: (s := strip()) is not None and s.frame_number > first.frame_number
                     and s, "a later frame on the screen")
        assert later.frame_number > first.frame_number
        print("strip frames read from the page:", first.frame_number, later.frame_number)
        # a second member: two tiles; the layout and pin actions
        other = make_peer("phone", room_number, tone=None)
        other.call(lambda s: s.join())
        other_id = other.session.local_id
        wait(lambda: len(tiles(page)) == 2, "two tiles")
        assert page.act("layout", {"layout": "single"})[0] == 200
        code, body = page.act("pin_member", {"id": other_id})
        assert code == 200 and body["result"]["pinned"] == other_id, body
        assert [t["id"] for t in tiles(page)] == [other_id]
        assert page.act("pin_member", {"id": "12345"})[1]["error"] == "NO_SUCH_MEMBER"
        assert page.act("layout", {"layout": "next"})[1]["result"] == {"layout": "grid"}
        # leaves: their tiles go
        other.call(lambda s: s.leave())
        wait(lambda: [t["id"] for t in tiles(page)] == [cam_id], "the phone's tile gone")
        cam.call(lambda s: s.leave())
        wait(lambda: tiles(page) == [], "an empty screen")
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    finally:
        page.close()
        loop.close()

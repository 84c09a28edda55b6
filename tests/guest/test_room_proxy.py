"""A guest link opens the room signalling and nothing else: through the whole appliance
and a real Janus, a guest joins the box's room; what a member may not do is refused;
expired, revoked and forged links are refused; the guest reaches no admin API."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp
import pytest

from services.web.passwords import reset
from tests.harness.netns import NsLoop

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

URL = "http://127.0.0.1:8080"
_tx = itertools.count(1)


async def _login(http: aiohttp.ClientSession, password: str) -> str:
    for _ in range(150):
        try:
            async with http.post(f"{URL}/api/login", json={"password": password}) as r:
                if r.status == 200:
                    token: str = (await r.json())["csrf_token"]
                    return token
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the page never answered a login")


async def _request(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any],
                   ) -> dict[str, Any]:
    """Send one request; the first answer for its transaction that is not an ack."""
    tx = f"t{next(_tx)}"
    await ws.send_str(json.dumps({**message, "transaction": tx}))
    async with asyncio.timeout(10):
        while True:
            reply = json.loads((await ws.receive()).data)
            if reply.get("transaction") == tx and reply.get("janus") != "ack":
                return reply  # type: ignore[no-any-return]


async def join_as_guest(ws: aiohttp.ClientWebSocketResponse,
                        **body: Any) -> dict[str, Any]:
    """A session, a VideoRoom handle and a publisher's join (``body`` added to it);
    returns (session, handle, the join's answer)."""
    session = (await _request(ws, {"janus": "create"}))["data"]["id"]
    handle = (await _request(ws, {"janus": "attach", "session_id": session,
                                  "plugin": "janus.plugin.videoroom"}))["data"]["id"]
    joined = await _request(ws, {"janus": "message", "session_id": session,
                                 "handle_id": handle,
                                 "body": {"request": "join", "ptype": "publisher",
                                          "display": "Ann", **body}})
    return {"session": session, "handle": handle, "joined": joined}


async def scenario(password: str, box_room: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as admin, aiohttp.ClientSession() as guest:
        csrf = await _login(admin, password)
        headers = {"X-CSRF-Token": csrf}
        async with admin.post(f"{URL}/api/guest-links", json={"ttl_seconds": 600,
                                                              "label": "Ann"},
                              headers=headers) as r:
            assert r.status == 200, await r.text()
            made = await r.json()
        token = made["path"].split("guest=", 1)[1]
        async with admin.post(f"{URL}/api/guest-links", json={"ttl_seconds": 600},
                              headers=headers) as r:
            revoked = await r.json()
        async with admin.delete(f"{URL}/api/guest-links/{revoked['link']['id']}",
                                headers=headers) as r:
            assert r.status == 200
        # the guest's link reaches no admin API: every route but the open ones
        from services.web.routes import ROUTES

        for route in ROUTES:
            if route.public:
                continue
            path = route.path.replace("{id}", "1").replace("{role}", "call")
            async with guest.request(route.method, f"{URL}{path}?guest={token}", json={},
                                     headers={"Cookie": f"edgeroom_session={token}"}) as r:
                out.setdefault("admin_api", set()).add(r.status)
        # refused links: before any WebSocket
        bad = {"revoked": revoked["path"].split("guest=", 1)[1],
               "forged": token[:-3] + "AAA", "none": ""}
        for name, value in bad.items():
            async with guest.get(f"{URL}/api/room/ws?guest={value}") as r:
                out[name] = (r.status, (await r.json())["error"])
        # the guest in the box's room
        async with guest.ws_connect(f"{URL}/api/room/ws?guest={token}",
                                    protocols=("janus-protocol",)) as ws:
            guest_in = await join_as_guest(ws, room=box_room)
            session, handle = guest_in["session"], guest_in["handle"]
            data = guest_in["joined"]["plugindata"]["data"]
            out["joined"] = (data.get("videoroom"), data.get("room"),
                             [p.get("display") for p in data.get("publishers", [])])
            for body in ({"request": "kick", "room": box_room, "id": 1},
                         {"request": "destroy", "room": box_room},
                         {"request": "join", "ptype": "publisher", "room": box_room + 1}):
                refused = await _request(ws, {"janus": "message", "session_id": session,
                                              "handle_id": handle, "body": body})
                out.setdefault("refused", []).append((refused["janus"],
                                                      refused["error"]["code"]))
            other = await _request(ws, {"janus": "attach", "session_id": session,
                                        "plugin": "janus.plugin.streaming"})
            out["streaming"] = other["error"]["code"]
            # web.max_guests = 1: a second guest is refused; the admin still gets in
            async with guest.get(f"{URL}/api/room/ws?guest={token}") as r:
                out["second"] = (r.status, (await r.json())["error"])
            async with admin.ws_connect(f"{URL}/api/room/ws",
                                        protocols=("janus-protocol",)) as mine:
                out["admin"] = (await _request(mine, {"janus": "create"}))["janus"]
            # web.guest_messages_per_second = 5 (bursts of 15): a flood is cut short
            for n in range(40):
                await ws.send_str(json.dumps({"janus": "keepalive", "session_id": session,
                                              "transaction": f"k{n}"}))
            codes = []
            async with asyncio.timeout(10):
                while len(codes) < 40:
                    reply = json.loads((await ws.receive()).data)
                    if str(reply.get("transaction", "")).startswith("k"):
                        codes.append(reply["error"]["code"] if reply["janus"] == "error"
                                     else reply["janus"])
            out["flood"] = codes
    return out


def test_a_guest_link_opens_the_room_and_nothing_else(make_appliance: Any, make_peer: Any,
                                                      janus: Any, room_number: int) -> None:
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"enabled": False},
        "web": {"listen": "127.0.0.1:8080", "max_guests": 1, "guest_messages_per_second": 5},
    }, start=False)
    password = reset(app.state_dir)
    app.start()
    loop = NsLoop(app.host)
    try:
        peer = make_peer("watch", room_number, tone=None)
        peer.call(lambda s: s.join())
        peer.wait_for(lambda: any(m.display == "box" for m in peer.session.members()),
                      timeout=30, what="the box in the room")
        out = loop.run(scenario(password, room_number), 60)
        assert out["admin_api"] == {401}, out
        assert out["revoked"] == (403, "LINK_REVOKED")
        assert out["forged"] == (403, "BAD_LINK")
        assert out["none"] == (403, "BAD_LINK")
        assert out["joined"][:2] == ("joined", room_number)
        assert "box" in out["joined"][2]  # the box is in the room the guest joined
        assert out["refused"] == [("error", 403)] * 3
        assert out["streaming"] == 403
        assert out["second"] == (503, "GUESTS_FULL")
        assert out["admin"] == "success"
        assert out["flood"].count(429) >= 20 and "ack" in out["flood"], out["flood"]
        # the room saw the guest come (under the name they gave) and go with the socket
        joined = peer.wait_event("member-joined", lambda d: d["display"] == "Ann")
        peer.wait_event("member-left", lambda d: d["id"] == joined["id"])
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-3000:])
        raise
    finally:
        loop.close()


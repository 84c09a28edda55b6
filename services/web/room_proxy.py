"""``GET /api/room/ws``: a guest's (or the admin's) room signalling, proxied to the box's
Janus through :mod:`services.guest.proxy`.

Who may connect: a logged-in admin (the session cookie), or a guest with a valid link
(``?guest=<token>``). A refused link answers 403 with why (``LINK_EXPIRED``,
``LINK_REVOKED``, ``BAD_LINK``) before any WebSocket exists; with ``max_guests`` guests
connected, 503 ``GUESTS_FULL``. A guest link opens this and nothing else: every other
path still asks for the admin session.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
from aiohttp import web

from services.guest.links import GuestLinkError
from services.guest.proxy import (
    JANUS_PROTOCOL,
    MAX_MESSAGE,
    GuestGate,
    TokenBucket,
    relay,
)
from services.web.context import COOKIE, ApiError, context

log = logging.getLogger(__name__)

GUESTS = "guests"


def gate_of(request: web.Request) -> GuestGate:
    gate = context(request).appliance.extras.get(GUESTS)
    if not isinstance(gate, GuestGate):
        raise ApiError(404, "NO_GUEST_ROOM", "this appliance has no room for guests")
    return gate


async def room_page(request: web.Request) -> web.FileResponse:
    """The room page (no secrets in it: the signalling checks who may join). It may use
    the browser's camera and microphone, which the config page may not."""
    return web.FileResponse(Path(__file__).parent / "static" / "room.html",
                            headers={"Permissions-Policy": "camera=(self), microphone=(self), "
                                                          "geolocation=()"})


async def room_ws(request: web.Request) -> web.StreamResponse:
    gate = gate_of(request)
    ctx = context(request)
    admin = ctx.sessions.get(request.cookies.get(COOKIE)) is not None
    who = "admin"
    if not admin:
        token = request.query.get("guest")
        try:
            link = await asyncio.to_thread(gate.links.verify, token)
        except GuestLinkError as exc:
            gate.refused += 1
            raise ApiError(403, exc.code, str(exc)) from None
        who = f"link {link.id}"
        if gate.active >= gate.settings.max_guests:
            gate.refused += 1
            raise ApiError(503, "GUESTS_FULL",
                           f"{gate.settings.max_guests} guests are in the room already")
    browser = web.WebSocketResponse(protocols=(JANUS_PROTOCOL,), heartbeat=30.0,
                                    max_msg_size=MAX_MESSAGE)
    await browser.prepare(request)
    gate.active += 0 if admin else 1
    log.info("room signalling for %s opened", who)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                gate.settings.janus_url, protocols=(JANUS_PROTOCOL,),
                max_msg_size=4 * MAX_MESSAGE, heartbeat=30.0) as janus:
            s = gate.settings
            await relay(browser, janus, gate.policy(),
                        TokenBucket(s.messages_per_second, s.burst), who)
    except (aiohttp.ClientError, OSError) as exc:
        log.warning("room signalling for %s: the room server: %s", who, exc)
        await browser.close(code=1011, message=b"room server unreachable")
    finally:
        gate.active -= 0 if admin else 1
        if not browser.closed:
            await browser.close()
        log.info("room signalling for %s closed", who)
    return browser

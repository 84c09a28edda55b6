"""``GET /api/events``: every event of the appliance's bus as server-sent events."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import weakref

from aiohttp import web

from drivers.common.bus import Event
from drivers.errors import EdgeroomError
from services.web.auth import reload_if_changed
from services.web.context import COOKIE, ApiError, context, jsonable, scrub
from services.web.extras import mic_users_of
from services.web.host import PageHost

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
POLL = 1.0  # how often a quiet stream checks its session and the server's shutdown
QUEUE = 256
WRITE_TIMEOUT = 10.0
#: The event that ended the session is the stream's last (the page learns why).
FAREWELL_EVENTS = frozenset({"password-changed"})
#: Events of the page's mic level meter stream.
METER_EVENTS = frozenset({"mic-level", "mic-open"})

_meter_ids = itertools.count(1)

#: Events seen per appliance, by name (for /metrics: reconnects, device-lost, ...).
_COUNTERS: weakref.WeakKeyDictionary[PageHost, collections.Counter[str]] = (
    weakref.WeakKeyDictionary())


def install_event_counter(appliance: PageHost) -> collections.Counter[str]:
    """Count the appliance's events by name (once per appliance, across web restarts)."""
    counter = _COUNTERS.get(appliance)
    if counter is None:
        counter = collections.Counter()
        _COUNTERS[appliance] = counter

        def count(event: Event, counter: collections.Counter[str] = counter) -> None:
            counter[event.name] += 1

        appliance.bus.add_listener(count)
    return counter


def event_counts(appliance: PageHost) -> collections.Counter[str]:
    return _COUNTERS.get(appliance) or collections.Counter()


def _frame(event: Event, secrets: list[str]) -> bytes:
    data = json.dumps(scrub(jsonable(event.to_dict()), secrets), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.name}\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    return await _stream(request, None)


async def mic_level(request: web.Request) -> web.StreamResponse:
    """The page's mic level meter: ``mic-level`` events, the mic held open meanwhile."""
    ctx = context(request)
    users = mic_users_of(ctx.appliance.extras)
    if users is None:
        raise ApiError(404, "NO_MIC", "this appliance has no microphone")
    name = f"page-meter:{next(_meter_ids)}"
    try:
        await users.acquire(name)
    except (EdgeroomError, OSError) as exc:
        await users.release(name)
        raise ApiError(503, "MIC_UNAVAILABLE", f"the microphone did not open: {exc}") from exc
    try:
        return await _stream(request, METER_EVENTS)
    finally:
        await users.release(name)


async def _stream(request: web.Request, names: frozenset[str] | None) -> web.StreamResponse:
    """The stream ends within :data:`POLL` when its session ends (logout, expiry, a
    password change here or by `edgeroom password reset`), however busy the bus is, or
    when the client goes away (which ends a level meter's hold on the mic)."""
    ctx = context(request)
    token = request.cookies.get(COOKIE)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    ctx.sse_clients += 1
    sub = ctx.appliance.bus.subscribe(maxsize=QUEUE, names=set(names) if names else None)
    loop = asyncio.get_running_loop()
    try:
        await _write(response, b"retry: 3000\n: connected\n\n")
        last_write = checked = loop.time()
        while not ctx.closing.is_set():
            try:
                event: Event | None = await sub.get(timeout=POLL)
            except TimeoutError:
                event = None
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away
            except EOFError:
                break
            now = loop.time()
            if now - checked >= POLL:
                checked = now
                reload_if_changed(ctx)  # a reset password ends every session
            # A logged-out or expired session ends the stream; the stream itself does not
            # count as activity. Checked before every write, not only when quiet.
            if not ctx.sessions.alive(token):
                if event is not None and event.name in FAREWELL_EVENTS:
                    await _write(response, _frame(event, ctx.appliance.secrets()))
                break
            if event is not None:
                await _write(response, _frame(event, ctx.appliance.secrets()))
                last_write = now
            elif now - last_write >= KEEPALIVE:
                await _write(response, b": keepalive\n\n")
                last_write = now
    except (ConnectionResetError, ConnectionError, TimeoutError):
        pass  # gone, or not reading: the stream ends
    finally:
        ctx.sse_dropped += sub.dropped
        sub.close()
        ctx.sse_clients -= 1
    return response


async def _write(response: web.StreamResponse, data: bytes) -> None:
    """A client that stops reading does not hold the stream forever."""
    async with asyncio.timeout(WRITE_TIMEOUT):
        await response.write(data)

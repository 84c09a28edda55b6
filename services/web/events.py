"""``GET /api/events``: every event of the appliance's bus as server-sent events."""

from __future__ import annotations

import collections
import itertools
import json
import logging
import weakref
from typing import TYPE_CHECKING

from aiohttp import web

from device.bus import Event
from drivers.errors import EdgeroomError
from services.web.context import COOKIE, ApiError, context, jsonable, scrub, secret_values
from services.web.extras import mic_users_of

if TYPE_CHECKING:
    from device.app import Appliance

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
POLL = 1.0  # how often a quiet stream checks its session and the server's shutdown
QUEUE = 256
#: Events of the page's mic level meter stream.
METER_EVENTS = frozenset({"mic-level", "mic-open"})

_meter_ids = itertools.count(1)

#: Events seen per appliance, by name (for /metrics: reconnects, device-lost, ...).
_COUNTERS: weakref.WeakKeyDictionary[Appliance, collections.Counter[str]] = (
    weakref.WeakKeyDictionary())


def install_event_counter(appliance: Appliance) -> collections.Counter[str]:
    """Count the appliance's events by name (once per appliance, across web restarts)."""
    counter = _COUNTERS.get(appliance)
    if counter is None:
        counter = collections.Counter()
        _COUNTERS[appliance] = counter

        def count(event: Event, counter: collections.Counter[str] = counter) -> None:
            counter[event.name] += 1

        appliance.bus.add_listener(count)
    return counter


def event_counts(appliance: Appliance) -> collections.Counter[str]:
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
    ctx = context(request)
    token = request.cookies.get(COOKIE)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    ctx.sse_clients += 1
    sub = ctx.appliance.bus.subscribe(maxsize=QUEUE, names=set(names) if names else None)
    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        quiet = 0.0
        while not ctx.closing.is_set():
            try:
                event = await sub.get(timeout=POLL)
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away (ends a level meter's hold on the mic)
                quiet += POLL
                # A logged-out or expired session ends the stream; the stream itself
                # does not count as activity.
                if not ctx.sessions.alive(token):
                    break
                if quiet >= KEEPALIVE:
                    quiet = 0.0
                    await response.write(b": keepalive\n\n")
                continue
            except EOFError:
                break
            quiet = 0.0
            await response.write(_frame(event, secret_values(ctx.appliance.config)))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        ctx.sse_dropped += sub.dropped
        sub.close()
        ctx.sse_clients -= 1
    return response

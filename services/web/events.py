"""``GET /api/events``: every event of the appliance's bus as server-sent events."""

from __future__ import annotations

import collections
import json
import logging
import weakref
from typing import TYPE_CHECKING

from aiohttp import web

from device.bus import Event
from services.web.context import COOKIE, context, jsonable, scrub, secret_values

if TYPE_CHECKING:
    from device.app import Appliance

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
POLL = 1.0  # how often a quiet stream checks its session and the server's shutdown
QUEUE = 256

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
    ctx = context(request)
    token = request.cookies.get(COOKIE)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    ctx.sse_clients += 1
    sub = ctx.appliance.bus.subscribe(maxsize=QUEUE)
    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        quiet = 0.0
        while not ctx.closing.is_set():
            try:
                event = await sub.get(timeout=POLL)
            except TimeoutError:
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

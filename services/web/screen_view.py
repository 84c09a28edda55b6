"""The page's view of the room screen: ``GET /api/display.jpg`` (the sim screen's
picture; ``app.extras["display"]`` provides ``jpeg()``, blocking, None when the screen is
not the sim one)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.web.context import ApiError, context

DISPLAY = "display"


async def display_jpeg(request: web.Request) -> web.StreamResponse:
    host = context(request).appliance.extras.get(DISPLAY)
    encode = getattr(host, "jpeg", None)
    if encode is None:
        raise ApiError(404, "NO_DISPLAY", "this appliance shows no screen")
    jpeg = await asyncio.wait_for(asyncio.to_thread(encode), 5.0)
    if not jpeg:
        raise ApiError(404, "NO_DISPLAY", "no sim screen is shown (display.backend = \"sim\" "
                                          "shows one here; a real screen is not copied)")
    return web.Response(body=bytes(jpeg), content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})

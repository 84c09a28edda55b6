"""The admin's guest links: make one, list them, revoke one (``/api/guest-links``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.guest.links import GuestLinkError
from services.web.context import ApiError, json_response, read_json
from services.web.room_proxy import gate_of
from services.web.schema import Schema

CREATE_BODY: Schema = {
    "type": "object", "additionalProperties": False,
    "properties": {"ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 2592000,
                                   "description": "how long the link works (default 1 day)"},
                   "label": {"type": "string", "maxLength": 64,
                             "description": "who it is for (shown in the list)"}},
}
LINK: Schema = {"type": "object", "required": ["id", "label", "created", "expires", "revoked"],
                "properties": {"id": {"type": "string"}, "label": {"type": "string"},
                               "created": {"type": "number"}, "expires": {"type": "number"},
                               "revoked": {"type": "boolean"}}}
CREATED: Schema = {"type": "object", "required": ["link", "path"],
                   "properties": {"link": LINK, "path": {"type": "string"}}}
LINKS: Schema = {"type": "object", "required": ["links"],
                 "properties": {"links": {"type": "array", "items": LINK}}}
STATUS = {"NO_SUCH_GUEST_LINK": 404, "TOO_MANY_GUEST_LINKS": 409, "BAD_ARGUMENT": 400}


def _api(exc: GuestLinkError) -> ApiError:
    return ApiError(STATUS.get(exc.code, 500), exc.code, str(exc))


async def create(request: web.Request) -> web.Response:
    gate = gate_of(request)
    body = await read_json(request, CREATE_BODY)
    try:
        link, token = await asyncio.to_thread(gate.links.create,
                                              int(body.get("ttl_seconds", 86400)),
                                              str(body.get("label", "")))
    except GuestLinkError as exc:
        raise _api(exc) from None
    return json_response({"link": link.to_dict(), "path": f"/room?guest={token}"})


async def listing(request: web.Request) -> web.Response:
    links = await asyncio.to_thread(gate_of(request).links.list)
    return json_response({"links": [link.to_dict() for link in links]})


async def revoke(request: web.Request) -> web.Response:
    try:
        link = await asyncio.to_thread(gate_of(request).links.revoke,
                                       request.match_info["id"])
    except GuestLinkError as exc:
        raise _api(exc) from None
    return json_response({"link": link.to_dict()})

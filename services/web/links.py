"""``/api/links``: the box's links to rooms on other servers (docs/links.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from drivers.common.actions import ACTIONS, ActionError
from services.web.context import context, json_response
from services.web.controls import _api_error, _dispatch, _ok, read_args
from services.web.schema import Schema

LINK_BODY: Schema = ACTIONS["link"].body_schema()
LINK: Schema = {"type": "object", "required": ["name", "state"],
                "properties": {"name": {"type": "string"},
                               "state": {"type": "string",
                                         "enum": ["connecting", "up", "retrying", "stopped",
                                                  "requested"]},
                               "local": {"type": "string"}, "far": {"type": "string"},
                               "direction": {"type": "string"},
                               "backend": {"type": "string"},
                               "reason": {"type": "string"},
                               "sent": {"type": "integer"},
                               "received": {"type": "integer"}}}
LINK_LIST: Schema = {"type": "object", "required": ["links"],
                     "properties": {"links": {"type": "array", "items": LINK}}}
LINK_NAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"}


async def list_links(request: web.Request) -> web.Response:
    links: Any = getattr(context(request).appliance.dispatcher, "links", None)
    return json_response({"links": links.links() if links is not None else []})


async def add_link(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "link", await read_args(request, LINK_BODY)))


async def remove_link(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        ACTIONS["unlink"].arg("name").check(name)
    except ActionError as exc:
        raise _api_error(exc) from None
    return _ok(await _dispatch(request, "unlink", {"name": name}))

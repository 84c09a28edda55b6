"""``/api/playbacks``: the box's playbacks, each change through the action dispatcher.

``POST`` starts one (the ``play`` action's arguments), ``GET`` lists them, ``PATCH
/api/playbacks/{id}`` pauses, resumes or sets the volume of one, ``DELETE`` stops it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from drivers.common.actions import ACTIONS, ActionError
from services.web.context import context, json_response
from services.web.controls import _api_error, _dispatch, _ok, read_args
from services.web.schema import Schema, obj, string

PLAY_BODY = ACTIONS["play"].body_schema()
PLAYBACK_ID: Schema = ACTIONS["playback"].arg("id").schema()
PATCH_BODY = obj({"state": string(enum=("playing", "paused")),
                  "volume": ACTIONS["playback"].arg("volume").schema()}, min_properties=1)
PLAYBACK: Schema = {
    "type": "object", "required": ["id", "kind", "source", "destination", "volume", "state"],
    "properties": {"id": {"type": "string"},
                   "kind": {"type": "string", "enum": ["file", "url", "text"]},
                   "source": {"type": "string"},
                   "destination": {"type": "string", "enum": ["room", "speaker", "both"]},
                   "volume": {"type": "integer"},
                   "state": {"type": "string", "enum": ["playing", "paused", "ended"]},
                   "position": {"type": "number", "description": "seconds played"}}}
PLAYBACK_LIST: Schema = {"type": "object", "required": ["playbacks"],
                         "properties": {"playbacks": {"type": "array", "items": PLAYBACK}}}


def _id(request: web.Request) -> str:
    playback_id = request.match_info["id"]
    try:
        ACTIONS["playback"].arg("id").check(playback_id)
    except ActionError as exc:
        raise _api_error(exc) from None
    return playback_id


async def play(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "play", await read_args(request, PLAY_BODY)))


async def list_playbacks(request: web.Request) -> web.Response:
    listed = context(request).appliance.status().get("playbacks")
    return json_response({"playbacks": listed if isinstance(listed, list) else []})


async def update(request: web.Request) -> web.Response:
    body = await read_args(request, PATCH_BODY)
    playback_id = _id(request)
    result: dict[str, Any] = {}
    if "volume" in body:
        result = await _dispatch(request, "playback", {"id": playback_id,
                                                       "volume": body["volume"]})
    if "state" in body:
        op = "pause" if body["state"] == "paused" else "resume"
        result = await _dispatch(request, "playback", {"id": playback_id, "op": op})
    return _ok(result)


async def stop(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "playback", {"id": _id(request), "op": "stop"}))

"""The page's controls; every one goes through the appliance's action dispatcher."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from device.actions import ActionError
from services.web.context import ApiError, context, json_response, read_json
from services.web.extras import buttons_of, maybe_await
from services.web.schema import BOOLEAN, Schema, integer, obj, string

log = logging.getLogger(__name__)

#: ActionError codes -> HTTP status; anything else (room refusals) is a 409 conflict.
ACTION_STATUS = {
    "BAD_ARGUMENT": 400,
    "UNKNOWN_ACTION": 400,
    "NO_SUCH_MEMBER": 404,
    "UNAVAILABLE": 503,
    "SERVER_UNREACHABLE": 503,
    "DEVICE_ERROR": 503,
}

EMPTY = obj({})
JOIN_BODY = obj({"room": integer(1, 2**53)})
MESSAGE_BODY = obj({"text": string(1, 1000), "to": string(1, 128)}, required=("text",))
AUDIO_BODY = obj({"mic_enabled": BOOLEAN, "speaker_enabled": BOOLEAN,
                  "mic_volume": integer(0, 100), "speaker_volume": integer(0, 100),
                  "deaf": BOOLEAN}, min_properties=1)
VIDEO_BODY = obj({"enabled": BOOLEAN}, required=("enabled",))
MEMBER_MUTE_BODY = obj({"muted": BOOLEAN, "everyone": BOOLEAN}, required=("muted",))
HAND_BODY = obj({"raised": BOOLEAN}, required=("raised",))
RECORD_BODY = obj({"state": string(enum=("start", "stop"))}, required=("state",))
STREAM_BODY = obj({"state": string(enum=("start", "stop")),
                   "url": string(1, 2048, pattern=r"^rtmps?://\S+$")}, required=("state",))
BUTTON_BODY = obj({"action": string(enum=("press", "release", "click"))},
                  required=("action",))
MEMBER_ID: Schema = string(1, 128)
BUTTON_ROLE: Schema = string(1, 32, pattern=r"^[a-z][a-z0-9_]*$")


async def _dispatch(request: web.Request, name: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        return await context(request).appliance.dispatcher.dispatch(name, args, source="web")
    except ActionError as exc:
        raise ApiError(ACTION_STATUS.get(exc.code, 409), exc.code, exc.message) from None


def _ok(result: dict[str, Any]) -> web.Response:
    return json_response({"ok": True, "result": result})


async def join(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "join", await read_json(request, JOIN_BODY)))


async def leave(request: web.Request) -> web.Response:
    await read_json(request, EMPTY)
    return _ok(await _dispatch(request, "leave", {}))


async def message(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "message", await read_json(request, MESSAGE_BODY)))


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


async def audio(request: web.Request) -> web.Response:
    body = await read_json(request, AUDIO_BODY)
    result: dict[str, Any] = {}
    if "mic_enabled" in body:
        result["mic"] = await _dispatch(request, "mute",
                                        {"state": _on_off(not body["mic_enabled"])})
    if "speaker_enabled" in body:
        result["speaker"] = await _dispatch(request, "speaker",
                                            {"state": _on_off(body["speaker_enabled"])})
    for target in ("mic", "speaker"):
        if f"{target}_volume" in body:
            result[f"{target}_volume"] = await _dispatch(
                request, "volume", {"target": target, "value": body[f"{target}_volume"]})
    if "deaf" in body:
        result["deaf"] = await _dispatch(request, "deaf", {"state": _on_off(body["deaf"])})
    return _ok(result)


async def video(request: web.Request) -> web.Response:
    body = await read_json(request, VIDEO_BODY)
    return _ok(await _dispatch(request, "video", {"state": _on_off(body["enabled"])}))


async def member_mute(request: web.Request) -> web.Response:
    body = await read_json(request, MEMBER_MUTE_BODY)
    member_id = request.match_info["id"]
    if not 1 <= len(member_id) <= 128:
        raise ApiError(400, "BAD_REQUEST", "id must be 1-128 characters")
    action = "moderate" if body.get("everyone") else "member_mute"
    return _ok(await _dispatch(request, action, {"id": member_id,
                                                 "state": _on_off(body["muted"])}))


async def hand(request: web.Request) -> web.Response:
    body = await read_json(request, HAND_BODY)
    return _ok(await _dispatch(request, "hand", {"state": _on_off(body["raised"])}))


async def record(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "record", await read_json(request, RECORD_BODY)))


async def stream(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "stream", await read_json(request, STREAM_BODY)))


async def button(request: web.Request) -> web.Response:
    body = await read_json(request, BUTTON_BODY)
    appliance = context(request).appliance
    role = request.match_info["role"]
    panel = buttons_of(appliance.extras)
    if panel is None or not appliance.sim:
        raise ApiError(503, "NO_VIRTUAL_BUTTONS",
                       "virtual buttons exist only in --sim mode with GPIO buttons configured")
    if role not in {str(r) for r in panel.roles}:
        raise ApiError(404, "NO_SUCH_BUTTON", f"no button {role!r:.40}")
    action = body["action"]
    try:
        if action in ("press", "click"):
            await maybe_await(panel.press(role))
        if action in ("release", "click"):
            await maybe_await(panel.release(role))
    except (KeyError, ValueError, RuntimeError) as exc:  # the gpio subsystem restarted
        raise ApiError(503, "NO_VIRTUAL_BUTTONS", f"button {role}: {exc}") from None
    log.info("virtual button %s %s", role, action)
    return json_response({"ok": True, "role": role, "action": action})

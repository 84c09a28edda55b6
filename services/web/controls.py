"""The page's controls; every one goes through the appliance's action dispatcher.

Request bodies are built from the actions' argument declarations (:mod:`drivers.common.actions`),
so a limit is the same here, on the serial line and in the dispatcher; an argument that
does not fit is ``400 BAD_ARGUMENT``, as from the dispatcher itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from drivers.common.actions import ACTIONS, ActionError
from services.web.context import ApiError, context, json_response, read_json
from services.web.extras import buttons_of, maybe_await
from services.web.schema import BOOLEAN, Schema, obj, string

log = logging.getLogger(__name__)

#: ActionError codes -> HTTP status; anything else (room refusals) is a 409 conflict.
ACTION_STATUS = {
    "BAD_ARGUMENT": 400,
    "UNKNOWN_ACTION": 400,
    "NO_SUCH_MEMBER": 404,
    "NO_SUCH_LINK": 404,
    "UNAVAILABLE": 503,
    "SERVER_UNREACHABLE": 503,
    "DEVICE_ERROR": 503,
    # the media pipeline (recording, streaming)
    "ENCODER_ERROR": 503,
    "OUTPUT_ERROR": 503,
    "DISK_FULL": 503,
    "MEDIA_ERROR": 503,
    # playbacks
    "NO_SUCH_PLAYBACK": 404,
    "FILE_NOT_FOUND": 404,
}

EMPTY = obj({})
JOIN_BODY = ACTIONS["join"].body_schema()
MESSAGE_BODY = ACTIONS["message"].body_schema()
VOLUME: Schema = ACTIONS["volume"].arg("value").schema()
AUDIO_BODY = obj({"mic_enabled": BOOLEAN, "speaker_enabled": BOOLEAN,
                  "mic_volume": VOLUME, "speaker_volume": VOLUME,
                  "deaf": BOOLEAN}, min_properties=1)
VIDEO_BODY = obj({"enabled": BOOLEAN}, required=("enabled",))
MEMBER_MUTE_BODY = obj({"muted": BOOLEAN, "everyone": BOOLEAN}, required=("muted",))
HAND_BODY = obj({"raised": BOOLEAN}, required=("raised",))
RECORD_BODY = ACTIONS["record"].body_schema()
STREAM_BODY = ACTIONS["stream"].body_schema()
BUTTON_BODY = obj({"action": string(enum=("press", "release", "click"))},
                  required=("action",))
MEMBER_ID: Schema = ACTIONS["member_mute"].arg("id").schema()
BUTTON_ROLE: Schema = string(1, 32, pattern=r"^[a-z][a-z0-9_]*$")
#: Every action has its own route, ``POST /api/actions/<name>``, except the factory
#: reset (the serial line and the call button only).
HTTP_ACTIONS = tuple(name for name in ACTIONS if name != "factory_reset")


def _api_error(exc: ActionError) -> ApiError:
    return ApiError(ACTION_STATUS.get(exc.code, 409), exc.code, exc.message)


async def _dispatch(request: web.Request, name: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        return await context(request).appliance.dispatcher.dispatch(name, args, source="web")
    except ActionError as exc:
        raise _api_error(exc) from None


async def read_args(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The body, checked against ``schema``; a field that does not fit is BAD_ARGUMENT."""
    try:
        return await read_json(request, schema)
    except ApiError as exc:
        if exc.code == "BAD_REQUEST":
            raise ApiError(400, "BAD_ARGUMENT", exc.message) from None
        raise


def action_handler(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``POST /api/actions/<name>``: the body is the action's arguments."""
    schema = ACTIONS[name].body_schema()

    async def handler(request: web.Request) -> web.Response:
        return _ok(await _dispatch(request, name, await read_args(request, schema)))

    handler.__name__ = f"action_{name}"
    return handler


def _ok(result: dict[str, Any]) -> web.Response:
    return json_response({"ok": True, "result": result})


async def join(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "join", await read_args(request, JOIN_BODY)))


async def leave(request: web.Request) -> web.Response:
    await read_args(request, EMPTY)
    return _ok(await _dispatch(request, "leave", {}))


async def message(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "message", await read_args(request, MESSAGE_BODY)))


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


#: A body field of POST /api/audio, the action that sets it and its arguments.
Step = tuple[str, str, dict[str, Any]]


def _audio_steps(controls: dict[str, Any]) -> list[Step]:
    """The actions that set the audio controls in ``controls`` (the body's field names,
    which are also the names of the room's controls)."""
    steps: list[Step] = []
    if "mic_enabled" in controls:
        steps.append(("mic_enabled", "mute", {"state": _on_off(not controls["mic_enabled"])}))
    if "speaker_enabled" in controls:
        steps.append(("speaker_enabled", "speaker",
                      {"state": _on_off(controls["speaker_enabled"])}))
    for target in ("mic", "speaker"):
        if f"{target}_volume" in controls:
            steps.append((f"{target}_volume", "volume",
                          {"target": target, "value": controls[f"{target}_volume"]}))
    if "deaf" in controls:
        steps.append(("deaf", "deaf", {"state": _on_off(controls["deaf"])}))
    return steps


#: The result key of each field (the reply's shape).
_AUDIO_RESULT = {"mic_enabled": "mic", "speaker_enabled": "speaker"}


async def audio(request: web.Request) -> web.Response:
    """All of the body's changes, or none: every argument is checked before the first
    change, and when a change fails the ones made before it are put back."""
    body = await read_args(request, AUDIO_BODY)
    steps = _audio_steps(body)
    try:
        for _, name, args in steps:
            ACTIONS[name].validate(args)
    except ActionError as exc:
        raise _api_error(exc) from None
    room = context(request).appliance.dispatcher.room
    if room is None:
        raise ApiError(503, "UNAVAILABLE", "the room client is not running")
    before = room.controls.to_dict()
    result: dict[str, Any] = {}
    done: list[str] = []
    try:
        for field, name, args in steps:
            result[_AUDIO_RESULT.get(field, field)] = await _dispatch(request, name, args)
            done.append(field)
    except ApiError:
        for _, name, args in reversed(_audio_steps({f: before[f] for f in done})):
            try:
                await _dispatch(request, name, args)
            except ApiError as exc:
                log.warning("POST /api/audio: could not undo %s: %s", name, exc.message)
        raise
    return _ok(result)


async def video(request: web.Request) -> web.Response:
    body = await read_args(request, VIDEO_BODY)
    return _ok(await _dispatch(request, "video", {"state": _on_off(body["enabled"])}))


async def member_mute(request: web.Request) -> web.Response:
    body = await read_args(request, MEMBER_MUTE_BODY)
    member_id = request.match_info["id"]
    try:
        ACTIONS["member_mute"].arg("id").check(member_id)
    except ActionError as exc:
        raise _api_error(exc) from None
    action = "moderate" if body.get("everyone") else "member_mute"
    return _ok(await _dispatch(request, action, {"id": member_id,
                                                 "state": _on_off(body["muted"])}))


async def hand(request: web.Request) -> web.Response:
    body = await read_args(request, HAND_BODY)
    return _ok(await _dispatch(request, "hand", {"state": _on_off(body["raised"])}))


async def record(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "record", await read_args(request, RECORD_BODY)))


async def stream(request: web.Request) -> web.Response:
    return _ok(await _dispatch(request, "stream", await read_args(request, STREAM_BODY)))


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

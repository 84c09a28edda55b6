"""Status, config, logs and the camera snapshot."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiohttp import web

from drivers.common.redact import REDACTED
from drivers.errors import ConfigError
from services.web.context import (
    ApiError,
    context,
    json_response,
    jsonable,
    read_json,
    scrub,
    session_of,
)
from services.web.extras import button_roles, maybe_await, snapshot_of
from services.web.host import PageConfig, PageHost
from services.web.listen_check import default_listen, listen_problem
from services.web.preview import PreviewError, preview_of
from services.web.schema import Schema, obj, string

log = logging.getLogger(__name__)

#: Applying a change that restarts the web server waits this long so the reply gets out.
WEB_RESTART_DELAY = 0.5
MAX_LOG_LINES = 500
#: The first-start password goes to the journal once, never to the page's log tail.
_PASSWORD_LINE = re.compile(r"(admin password \(shown only this once\): )\S+")

CONFIG_PATCH_BODY: Schema = {
    "type": "object",
    "description": "{section: {key: value}}; null resets a key, the redacted value keeps "
                   "a secret unchanged",
    "additionalProperties": {"type": "object"},
}


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


CAMERA_OFFER_BODY: Schema = obj({"sdp": string(1, 60_000), "type": string(enum=("offer",))},
                                required=("sdp", "type"))
CAMERA_ANSWER: Schema = {"type": "object", "required": ["sdp", "type"],
                         "properties": {"sdp": {"type": "string"},
                                        "type": {"type": "string", "enum": ["answer"]}}}


def status_snapshot(request: web.Request) -> dict[str, Any]:
    appliance = context(request).appliance
    # Secrets never leave through the status (an RTMP URL with its stream key, a PIN).
    data = scrub(jsonable(appliance.status()), appliance.secrets())
    data["virtual_buttons"] = button_roles(appliance.extras) if appliance.sim else []
    data["camera_preview"] = snapshot_of(appliance.extras) is not None
    data["camera_webrtc"] = preview_of(appliance.extras) is not None
    return data


async def status(request: web.Request) -> web.Response:
    return json_response(status_snapshot(request))


def _config_view(config: PageConfig) -> dict[str, Any]:
    return config.to_dict(redact=True)


async def get_config(request: web.Request) -> web.Response:
    appliance = context(request).appliance
    return json_response({"config": _config_view(appliance.config),
                          "schema": appliance.config_schema(), "redacted": REDACTED})


def _without_redacted(host: PageHost, body: dict[str, Any]) -> dict[str, Any]:
    """A redacted value sent back for a secret key means "unchanged"."""
    secrets = {row["key"] for row in host.config_schema() if row.get("secret")}
    patch: dict[str, Any] = {}
    for section, values in body.items():
        if isinstance(values, dict):
            values = {k: v for k, v in values.items()
                      if not (f"{section}.{k}" in secrets and v == REDACTED)}
        patch[section] = values
    return patch


async def patch_config(request: web.Request) -> web.Response:
    ctx = context(request)
    appliance = ctx.appliance
    patch = _without_redacted(appliance, await read_json(request, CONFIG_PATCH_BODY))
    try:
        new = appliance.config.replace(patch)
    except ConfigError as exc:
        raise ApiError(400, "INVALID_CONFIG", str(exc), extra={"errors": [
            {"key": i.key, "message": i.message, "line": i.line} for i in exc.issues]}) from None
    await _check_listen(appliance, new)
    scopes = sorted(appliance.restart_scopes(appliance.config, new))
    pending = "web" in scopes
    if pending:
        # Restarting the web server from inside one of its own requests would cut this
        # reply off: apply just after it is sent, from a task the server does not own.
        task = asyncio.create_task(_apply_later(appliance, patch), name="web:apply-config")
        ctx.pending.add(task)
        task.add_done_callback(ctx.pending.discard)
    else:
        try:
            new = await appliance.update_config(patch)
        except ConfigError as exc:  # the config changed under us in between
            raise ApiError(400, "INVALID_CONFIG", str(exc), extra={"errors": [
                {"key": i.key, "message": i.message, "line": i.line}
                for i in exc.issues]}) from None
        except OSError as exc:
            raise ApiError(503, "SAVE_FAILED", f"could not save the config: {exc}") from None
    return json_response({"config": _config_view(new), "restart": scopes, "pending": pending})


async def _check_listen(appliance: PageHost, new: PageConfig) -> None:
    """A new ``web.listen`` must be usable on this box (else the page would be gone)."""
    if new.web.listen == appliance.config.web.listen:
        return
    current = appliance.config.web.listen or default_listen(appliance.sim)
    problem = await asyncio.to_thread(
        listen_problem, new.web.listen or default_listen(appliance.sim), current)
    if problem is not None:
        raise ApiError(400, "INVALID_CONFIG", f"web.listen: {problem}", extra={"errors": [
            {"key": "web.listen", "message": problem, "line": None}]})


async def _apply_later(appliance: PageHost, patch: dict[str, Any]) -> None:
    await asyncio.sleep(WEB_RESTART_DELAY)
    try:
        await appliance.update_config(patch)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("applying the config change failed")


async def get_logs(request: web.Request) -> web.Response:
    raw = request.query.get("lines", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LOG_LINES:
        raise ApiError(400, "BAD_REQUEST", f"lines must be an integer 1-{MAX_LOG_LINES}")
    host = context(request).appliance
    tail = host.log_lines()[-int(raw):]
    secrets = host.secrets()
    lines = [scrub(_PASSWORD_LINE.sub(r"\1(hidden)", line), secrets) for line in tail]
    return json_response({"lines": lines})


async def camera_jpeg(request: web.Request) -> web.StreamResponse:
    provider = snapshot_of(context(request).appliance.extras)
    if provider is None:
        raise ApiError(404, "NO_CAMERA_PREVIEW", "this appliance has no camera preview "
                                                 "(no snapshot provider is running)")
    try:
        jpeg = await asyncio.wait_for(maybe_await(provider.snapshot_jpeg()), 5.0)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise ApiError(503, "CAMERA_UNAVAILABLE", f"no camera frame: {exc}") from None
    if not jpeg:
        raise ApiError(503, "CAMERA_UNAVAILABLE", "no camera frame yet (camera off or starting)")
    return web.Response(body=bytes(jpeg), content_type="image/jpeg")


async def camera_offer(request: web.Request) -> web.Response:
    """Answer the page's WebRTC offer with the camera's live video (H.264)."""
    ctx = context(request)
    body = await read_json(request, CAMERA_OFFER_BODY)
    preview = preview_of(ctx.appliance.extras)
    if preview is None:
        raise ApiError(404, "NO_CAMERA_PREVIEW", "this appliance has no live camera preview")
    try:
        answer = await asyncio.wait_for(
            preview.answer(body["sdp"], session_of(request).token, ctx.sessions.alive), 10.0)
    except PreviewError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except TimeoutError:
        raise ApiError(503, "CAMERA_UNAVAILABLE", "the camera preview did not start") from None
    return json_response(answer)

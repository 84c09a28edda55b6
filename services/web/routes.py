"""Every route of the page's API, with what the OpenAPI document says about it.

The server registers exactly these routes and :mod:`services.web.openapi` documents
exactly these, from the same request schemas the handlers validate with.
"""

from __future__ import annotations

from aiohttp import web

from drivers.common.actions import ACTIONS
from services.web import (
    auth,
    controls,
    events,
    guest_links,
    handlers,
    links,
    metrics,
    playbacks,
    room_proxy,
    screen_view,
)
from services.web.context import context, json_response
from services.web.openapi import document
from services.web.route import Route
from services.web.schema import Schema, integer

ANY_OBJECT: Schema = {"type": "object"}
OK_RESULT: Schema = {"type": "object", "required": ["ok", "result"],
                     "properties": {"ok": {"type": "boolean"}, "result": ANY_OBJECT}}
CSRF_TOKEN: Schema = {"type": "object", "required": ["csrf_token"], "additionalProperties": False,
                      "properties": {"csrf_token": {"type": "string"}}}
#: room.room: a number, or the room's name on a server that names rooms by strings
ROOM_ID: Schema = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
MEMBER: Schema = {"type": "object", "required": ["id", "display"],
                  "properties": {"id": {"type": "string"}, "display": {"type": "string"},
                                 "talking": {"type": "boolean"},
                                 "audio_muted": {"type": "boolean"},
                                 "mic_off": {"type": "boolean"},
                                 "locally_muted": {"type": "boolean"},
                                 "hand_raised": {"type": "boolean"}}}
ROOM_WARNING: Schema = {"type": "object", "required": ["code", "message"],
                        "properties": {"code": {"type": "string"},
                                       "message": {"type": "string"},
                                       "codec": {"type": "string"},
                                       "room_codecs": {"type": "array",
                                                       "items": {"type": "string"}},
                                       "supported": {"type": "array",
                                                     "items": {"type": "string"}}}}
ROOM_FEATURES: Schema = {
    "type": "object", "nullable": True,
    "description": "The room's metadata, status and notice, requests to speak and chat "
                   "moderation as this box knows them (docs/room.md).",
    "required": ["meta", "status", "notice", "member_meta", "own_meta", "moderator",
                 "requests", "own_request", "chat"],
    "properties": {
        "meta": ANY_OBJECT,
        "status": {"type": "string", "nullable": True,
                   "enum": ["to-be-started", "live", "paused", "ended", None]},
        "notice": {"type": "string", "nullable": True},
        "ts": {"type": "integer", "nullable": True},
        "by": {"type": "string", "nullable": True},
        "status_by": {"type": "string", "nullable": True},
        "member_meta": ANY_OBJECT,
        "own_meta": ANY_OBJECT,
        "moderator": {"type": "boolean"},
        "requests": {"type": "array", "items": {
            "type": "object", "required": ["id", "display", "request", "timeout_s"],
            "properties": {"id": {"type": "string"}, "display": {"type": "string"},
                           "request": {"type": "string"}, "timeout_s": {"type": "number"}}}},
        "own_request": {"type": "object", "nullable": True},
        "chat": {"type": "object", "required": ["locked", "muted", "dropped"],
                 "properties": {"locked": {"type": "boolean"},
                                "muted": {"type": "array", "items": {"type": "string"}},
                                "dropped": {"type": "integer"}}},
    },
}
STATUS: Schema = {
    "type": "object",
    "required": ["state", "reason", "version", "uptime", "sim", "room", "stats", "subsystems",
                 "devices", "virtual_buttons", "camera_preview"],
    "properties": {
        "state": {"type": "string", "enum": ["setup", "idle", "joining", "in_room",
                                             "reconnecting", "error"]},
        "reason": {"type": "string"},
        "version": {"type": "string"},
        "uptime": {"type": "number"},
        "sim": {"type": "boolean"},
        "room": {"type": "object", "required": ["id", "backend", "state", "members"],
                 "properties": {"id": ROOM_ID, "backend": {"type": "string"},
                                "state": {"type": "string", "nullable": True},
                                "members": {"type": "array", "items": MEMBER},
                                "controls": {"type": "object", "nullable": True},
                                "video_codec": {"type": "string", "nullable": True,
                                                "enum": ["h264", "vp8", None]},
                                "audio_codec": {"type": "string", "nullable": True,
                                                "enum": ["opus", "pcmu", "pcma", "g722",
                                                         None]},
                                "warnings": {"type": "array", "items": ROOM_WARNING},
                                "speaker": {"type": "string", "nullable": True,
                                            "enum": ["idle", "resting", "playing", "failed",
                                                     None]}}},
        "stats": ANY_OBJECT,
        "subsystems": ANY_OBJECT,
        "devices": ANY_OBJECT,
        "virtual_buttons": {"type": "array", "items": {"type": "string"}},
        "camera_preview": {"type": "boolean"},
        "camera_webrtc": {"type": "boolean"},
        "room_features": ROOM_FEATURES,
        "display": {"type": "object", "required": ["backend", "tiles"], "properties": {
            "backend": {"type": "string"}, "reason": {"type": "string"},
            "layout": {"type": "string", "enum": ["grid", "speaker", "single"]},
            "pinned": {"type": "string", "nullable": True},
            "focus": {"type": "string", "nullable": True},
            "tiles": {"type": "array", "items": {
                "type": "object", "required": ["id", "name", "x", "y", "w", "h"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                               "main": {"type": "boolean"}, "talking": {"type": "boolean"},
                               "hand_raised": {"type": "boolean"},
                               "muted": {"type": "boolean"}, "video": {"type": "boolean"},
                               "x": {"type": "integer"}, "y": {"type": "integer"},
                               "w": {"type": "integer"}, "h": {"type": "integer"}}}}}},
        "health": {"type": "object", "required": ["healthy", "probes"], "properties": {
            "healthy": {"type": "boolean"},
            "probes": {"type": "array", "items": {
                "type": "object", "required": ["name", "ok", "active", "last_ok_age", "grace"],
                "properties": {"name": {"type": "string"}, "ok": {"type": "boolean"},
                               "active": {"type": "boolean"},
                               "last_ok_age": {"type": "number", "nullable": True},
                               "grace": {"type": "number"},
                               "error": {"type": "string"}}}}}},
        "media": {"type": "object", "properties": {
            "mic": {"type": "object", "properties": {
                "open": {"type": "boolean"},
                "users": {"type": "array", "items": {"type": "string"}},
                "level_dbfs": {"type": "number", "nullable": True}}}}},
    },
}
CONFIG_VIEW: Schema = {
    "type": "object", "required": ["config", "schema", "redacted"],
    "properties": {"config": ANY_OBJECT, "redacted": {"type": "string"},
                   "schema": {"type": "array", "items": {
                       "type": "object", "required": ["key", "type", "doc"],
                       "properties": {"key": {"type": "string"}, "type": {"type": "string"},
                                      "doc": {"type": "string"},
                                      "secret": {"type": "boolean"}}}}},
}
CONFIG_SAVED: Schema = {
    "type": "object", "required": ["config", "restart", "pending"],
    "properties": {"config": ANY_OBJECT,
                   "restart": {"type": "array", "items": {"type": "string"}},
                   "pending": {"type": "boolean"}},
}
BUTTON_DONE: Schema = {"type": "object", "required": ["ok", "role", "action"],
                       "properties": {"ok": {"type": "boolean"}, "role": {"type": "string"},
                                      "action": {"type": "string"}}}

UNSAFE_ERRORS = (400, 401, 403, 413, 415)
ACTION_ERRORS = (*UNSAFE_ERRORS, 404, 409, 503)


def _action_route(name: str) -> Route:
    spec = ACTIONS[name]
    member = any(a.name == "id" for a in spec.args)
    return Route("POST", f"/api/actions/{name}", controls.action_handler(name), spec.doc,
                 "actions", body=spec.body_schema(), response=OK_RESULT,
                 errors=(*ACTION_ERRORS, 404) if member else ACTION_ERRORS,
                 description="The body is the action's arguments, as declared once for "
                             "every surface (docs/http-api.md#actions).")


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document(ROUTES, context(request).appliance.version))


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/health", handlers.health, "Liveness (reveals nothing else).", "auth",
          response={"type": "object", "required": ["status"], "additionalProperties": False,
                    "properties": {"status": {"type": "string", "enum": ["ok"]}}},
          errors=(), public=True),
    Route("POST", "/api/login", auth.login, "Log in; sets the session cookie.", "auth",
          body=auth.LOGIN_BODY, response=CSRF_TOKEN,
          errors=(400, 401, 403, 413, 415, 429, 503), public=True,
          description="401 on a wrong password; after 5 failures in 10 minutes from one "
                      "address, 429 with Retry-After for 10 minutes; after 20 failures "
                      "in 10 minutes from all addresses, 429 for everyone until the "
                      "oldest is 10 minutes old (web.login_failures, "
                      "web.login_failures_total)."),
    Route("GET", "/api/session", auth.session_info,
          "The CSRF token of this session (for a reloaded page).", "auth",
          response=CSRF_TOKEN),
    Route("POST", "/api/logout", auth.logout, "End this session.", "auth",
          body=controls.EMPTY, response={"type": "object", "required": ["ok"],
                                         "properties": {"ok": {"type": "boolean"}}},
          errors=UNSAFE_ERRORS),
    Route("POST", "/api/password", auth.change_password,
          "Change the admin password; ends every session and starts a new one for the caller.",
          "auth", body=auth.PASSWORD_BODY, response=CSRF_TOKEN,
          errors=(*UNSAFE_ERRORS, 429, 503)),
    Route("GET", "/api/status", handlers.status,
          "State, room and members, stats, devices, subsystems, health probes.", "status",
          response=STATUS),
    Route("GET", "/api/config", handlers.get_config,
          "The config (secrets redacted) and the description of every key.", "config",
          response=CONFIG_VIEW),
    Route("PATCH", "/api/config", handlers.patch_config,
          "Change keys; validated, saved atomically, only affected subsystems restart.",
          "config", body=handlers.CONFIG_PATCH_BODY, response=CONFIG_SAVED,
          errors=(*UNSAFE_ERRORS, 503),
          description='400 lists every problem in "errors" ({key, message, line}). '
                      '"pending" is true when the change restarts the web server itself: '
                      "it is applied half a second after the reply."),
    Route("POST", "/api/room/join", controls.join, "Enter the room.", "controls",
          body=controls.JOIN_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/room/leave", controls.leave, "Exit the room.", "controls",
          body=controls.EMPTY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/room/message", controls.message, "Send a text message.", "controls",
          body=controls.MESSAGE_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/audio", controls.audio, "Mic and speaker on/off and volumes.",
          "controls", body=controls.AUDIO_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/video", controls.video, "Camera on/off (off closes the camera).",
          "controls", body=controls.VIDEO_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/members/{id}/mute", controls.member_mute,
          "Mute a member locally, or for everyone (needs room.secret).", "controls",
          body=controls.MEMBER_MUTE_BODY, response=OK_RESULT,
          errors=(*ACTION_ERRORS, 404), path_params={"id": controls.MEMBER_ID}),
    Route("POST", "/api/hand", controls.hand, "Raise or lower a hand.", "controls",
          body=controls.HAND_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/record", controls.record, "Start or stop recording.", "controls",
          body=controls.RECORD_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/stream", controls.stream, "Start or stop the RTMP live stream.",
          "controls", body=controls.STREAM_BODY, response=OK_RESULT, errors=ACTION_ERRORS),
    Route("POST", "/api/buttons/{role}", controls.button,
          "Press or release a simulated GPIO button (--sim only).", "controls",
          body=controls.BUTTON_BODY, response=BUTTON_DONE, errors=(*UNSAFE_ERRORS, 404, 503),
          path_params={"role": controls.BUTTON_ROLE}),
    Route("GET", "/api/events", events.events, "Every event, as server-sent events.", "status",
          media="text/event-stream", response={"type": "string"},
          description="Each event: `id: <seq>`, `event: <name>`, `data: {event, seq, ts, "
                      "data}`. Ends when the session ends."),
    Route("GET", "/api/mic-level", events.mic_level,
          "The page's mic level meter, as server-sent events; the mic is open meanwhile.",
          "status", media="text/event-stream", response={"type": "string"},
          errors=(401, 404, 503),
          description="`mic-level` events ({level_dbfs}, 5 a second) and `mic-open` events "
                      "({open, users}). While this stream is open the capture device is "
                      "held open for it (user `page-meter:<n>` in `media.mic.users`); it is "
                      "released when the stream ends. 503 MIC_UNAVAILABLE when the "
                      "microphone cannot be opened."),
    Route("GET", "/api/logs", handlers.get_logs, "The last log lines.", "status",
          response={"type": "object", "required": ["lines"],
                    "properties": {"lines": {"type": "array", "items": {"type": "string"}}}},
          errors=(400, 401), query={"lines": integer(1, handlers.MAX_LOG_LINES)}),
    Route("GET", "/api/camera.jpg", handlers.camera_jpeg, "The latest camera frame (JPEG).",
          "status", media="image/jpeg", response={"type": "string", "format": "binary"},
          errors=(401, 404, 503)),
    Route("POST", "/api/camera/offer", handlers.camera_offer,
          "Live camera preview over WebRTC: answer the page's offer.", "status",
          body=handlers.CAMERA_OFFER_BODY, response=handlers.CAMERA_ANSWER,
          errors=(*UNSAFE_ERRORS, 404, 503),
          description="The offer has one receive-only video section with H.264 or VP8; the "
                      "answer sends the camera's live video in one of them (the codec the "
                      "encoder already produces for the room when offered, so no second encode; "
                      "else H.264, else VP8). No STUN/TURN: the browser must reach the "
                      "appliance directly. At most 2 previews at once (503 PREVIEW_BUSY "
                      "beyond); a new offer from the same session replaces its previous "
                      "preview; a preview ends when the browser closes it, when it fails or "
                      "does not connect within 20 s, and when the session ends. 404 when the "
                      "appliance has no camera preview; fall back to GET /api/camera.jpg where "
                      "WebRTC cannot run."),
    Route("GET", "/api/links", links.list_links, "The links to rooms on other servers.",
          "links", response=links.LINK_LIST),
    Route("POST", "/api/links", links.add_link,
          "Link this room with a room on another Janus server (docs/links.md).", "links",
          body=links.LINK_BODY, response=OK_RESULT, errors=ACTION_ERRORS,
          description="With the far room's secret the link starts at once; without it the "
                      "far room is asked and answers with a link-answer event."),
    Route("DELETE", "/api/links/{name}", links.remove_link, "End a link.", "links",
          response=OK_RESULT, errors=(*ACTION_ERRORS, 404),
          path_params={"name": links.LINK_NAME}),
    # -- playbacks ------------------------------------------------------------------------
    Route("POST", "/api/playbacks", playbacks.play,
          "Play a sound file, a URL or spoken text into the room, on the speaker, or both.",
          "playbacks", body=playbacks.PLAY_BODY, response=OK_RESULT,
          errors=(*ACTION_ERRORS, 404),
          description="Exactly one of file (in the state dir), url (http/https) or text "
                      "(spoken by espeak-ng). The result is the playback, with its id. "
                      "409 NOT_IN_ROOM outside a room, 409 BUSY with 4 playbacks running, "
                      "404 FILE_NOT_FOUND, 409 PLAYBACK_ERROR when it cannot be decoded."),
    Route("GET", "/api/playbacks", playbacks.list_playbacks, "The playbacks running now.",
          "playbacks", response=playbacks.PLAYBACK_LIST),
    Route("PATCH", "/api/playbacks/{id}", playbacks.update,
          "Pause or resume a playback, or set its volume.", "playbacks",
          body=playbacks.PATCH_BODY, response=OK_RESULT, errors=(*ACTION_ERRORS, 404),
          path_params={"id": playbacks.PLAYBACK_ID}),
    Route("DELETE", "/api/playbacks/{id}", playbacks.stop, "Stop a playback.", "playbacks",
          response=OK_RESULT, errors=(*ACTION_ERRORS, 404),
          path_params={"id": playbacks.PLAYBACK_ID}),
    Route("GET", "/api/display.jpg", screen_view.display_jpeg,
          "The sim screen's picture (JPEG).", "status", media="image/jpeg",
          response={"type": "string", "format": "binary"}, errors=(401, 404),
          description="What the room screen shows with display.backend = \"sim\" "
                      "(docs/display.md); 404 NO_DISPLAY otherwise."),
    Route("GET", "/room", room_proxy.room_page, "The room page (guests and the admin).",
          "guests", media="text/html", response={"type": "string"}, errors=(),
          public=True, description="Plain JavaScript, served by the box; it joins the "
                                   "box's room through /api/room/ws (docs/web.md)."),
    Route("GET", "/api/room/ws", room_proxy.room_ws,
          "The room page's signalling (WebSocket, subprotocol janus-protocol).", "guests",
          media="application/json", response={"type": "string"},
          errors=(403, 404, 503), public=True,
          query={"guest": {"type": "string", "maxLength": 200}},
          description="A WebSocket upgrade: the admin session cookie or ?guest=<a guest "
                      "link's token>. Only a member's Janus requests on the box's room "
                      "pass; 403 LINK_EXPIRED, LINK_REVOKED or BAD_LINK and 503 "
                      "GUESTS_FULL before the upgrade."),
    Route("POST", "/api/guest-links", guest_links.create,
          "Make a guest link: room membership only, until it expires or is revoked.",
          "guests", body=guest_links.CREATE_BODY, response=guest_links.CREATED,
          errors=(*UNSAFE_ERRORS, 404, 409),
          description="The answer's path (/room?guest=...) opens the room page as a guest; "
                      "the link opens that page and its signalling (/api/room/ws) only."),
    Route("GET", "/api/guest-links", guest_links.listing, "The guest links made.", "guests",
          response=guest_links.LINKS, errors=(401, 404)),
    Route("DELETE", "/api/guest-links/{id}", guest_links.revoke, "Revoke a guest link.",
          "guests", response={"type": "object", "required": ["link"],
                              "properties": {"link": guest_links.LINK}},
          errors=(401, 403, 404), path_params={"id": {"type": "string", "maxLength": 64}}),
    *(_action_route(name) for name in controls.HTTP_ACTIONS),
    Route("GET", "/api/openapi.json", openapi_json, "This document.", "status",
          response=ANY_OBJECT),
    Route("GET", "/metrics", metrics.metrics, "Prometheus metrics.", "status",
          media="text/plain", response={"type": "string"}, errors=(401, 429),
          description="Takes the session cookie, or HTTP Basic auth as user admin "
                      "(for scrapers)."),
)

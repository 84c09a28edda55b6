"""The OpenAPI 3 document of the page's API, built from the routes it is given
(:data:`services.web.routes.ROUTES`)."""

from __future__ import annotations

import copy
import functools
from typing import Any

from services.web.context import COOKIE, CSRF_HEADER, UNSAFE_METHODS
from services.web.route import Route

ERROR: dict[str, Any] = {
    "type": "object", "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "stable code, e.g. BAD_REQUEST"},
        "message": {"type": "string", "description": "what was wrong, for people"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["key", "message", "line"],
            "properties": {"key": {"type": "string"}, "message": {"type": "string"},
                           "line": {"type": "integer", "nullable": True}}}},
    },
}
REASONS = {
    400: "Malformed JSON, a wrong type or value (the message names the field)",
    401: "No session (log in), or a wrong password",
    403: "Missing or wrong X-CSRF-Token, a foreign Origin, or a wrong current password",
    404: "No such member, button, playback, file or link, or nothing to show",
    409: "Refused in the current state (not in a room, wrong pin, ...)",
    413: "Request body larger than 64 KiB",
    415: "Request body is not application/json",
    429: "Too many failed logins from this address",
    503: "The part of the appliance this needs is not running, or it failed (a device, "
         "the encoder, the recording or stream output)",
}


def _operation(route: Route) -> dict[str, Any]:
    content: dict[str, Any] = {route.media: {"schema": route.response or {}}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    for status in sorted(set(route.errors)):
        response: dict[str, Any] = {
            "description": REASONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {
                "description": "seconds until a new try is allowed",
                "schema": {"type": "integer", "minimum": 1}}}
        responses[str(status)] = response
    op: dict[str, Any] = {
        "operationId": f"{route.method.lower()}{route.path.replace('/', '_').replace('.', '_')}"
                       .replace("{", "").replace("}", ""),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if route.description:
        op["description"] = route.description
    if route.public:
        op["security"] = []
    elif route.method in UNSAFE_METHODS:
        op["security"] = [{"session": [], "csrf": []}]
    elif route.path == "/metrics":
        op["security"] = [{"session": []}, {"basic": []}]
    params = [{"name": name, "in": "path", "required": True, "schema": schema}
              for name, schema in route.path_params.items()]
    params += [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in route.query.items()]
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": False,
                             "content": {"application/json": {"schema": route.body}}}
    return op


@functools.cache
def _document(routes: tuple[Route, ...], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {"title": "edgeroom appliance", "version": version,
                 "description": "The local HTTP API of the appliance; its config page uses "
                                "only this. Log in with POST /api/login, then send the session "
                                f"cookie, and on every POST/PATCH the {CSRF_HEADER} header."},
        "paths": paths,
        "security": [{"session": []}],
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


def document(routes: tuple[Route, ...], version: str) -> dict[str, Any]:
    """The document for ``routes`` of an appliance running ``version``."""
    return copy.deepcopy(_document(routes, version))

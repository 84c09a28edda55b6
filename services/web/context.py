"""What every request handler of the config page shares, and the helpers they use."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from drivers.common.redact import REDACTED
from drivers.errors import EdgeroomError
from services.web.host import PageHost
from services.web.passwords import PasswordFile
from services.web.schema import BodyError, Schema, validate
from services.web.sessions import LoginLimiter, Session, SessionStore

log = logging.getLogger(__name__)

COOKIE = "edgeroom_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY = 64 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class WebContext:
    appliance: PageHost
    passwords: PasswordFile
    https: bool = False
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    #: scrypt needs 16 MiB per check: at most two at once.
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    sse_dropped: int = 0
    sse_clients: int = 0
    #: Config changes that restart the web server itself run after the response is sent.
    pending: set[asyncio.Task[Any]] = field(default_factory=set)
    #: A request body must arrive within this (``web.body_seconds``).
    body_seconds: float = 30.0
    #: The listening socket's guard (connection counts for /metrics), once listening.
    listener: Any = None


CONTEXT: web.AppKey[WebContext] = web.AppKey("edgeroom_web", WebContext)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("edgeroom_session", Session)


def context(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def session_of(request: web.Request) -> Session:
    return request[SESSION_KEY]


class ApiError(EdgeroomError, ValueError):
    """An error answered as ``{"error": code, "message": ...}`` with HTTP ``status``."""

    def __init__(self, status: int, code: str, message: str,
                 extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"error": self.code, "message": self.message, **self.extra}
        return web.json_response(body, status=self.status, headers=self.headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


async def read_json(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The request body as a JSON object checked against ``schema`` (400/413/415 if not)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "TOO_LARGE", f"request body is larger than {MAX_BODY} bytes")
    ctype = request.content_type
    seconds = request.app[CONTEXT].body_seconds
    try:
        async with asyncio.timeout(seconds):
            raw = await _read_limited(request)
    except TimeoutError:
        raise ApiError(408, "REQUEST_TIMEOUT",
                       f"the request body did not arrive within {seconds:.0f} s",
                       headers={"Connection": "close"}) from None
    if not raw:  # no body at all means no arguments; whitespace is not JSON
        data: Any = {}
    else:
        if ctype != "application/json" and request.headers.get("Content-Type"):
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                           f"send application/json, not {ctype}")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise ApiError(400, "BAD_JSON", "request body is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "BAD_JSON", f"request body is not valid JSON: {exc}") from None
    try:
        validate(data, schema)
    except BodyError as exc:
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    assert isinstance(data, dict)
    return data


async def _read_limited(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(16 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "TOO_LARGE", f"request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)


def jsonable(value: Any) -> Any:
    """Make status values JSON-safe: sets become sorted lists, odd floats null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=str)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret string in it replaced by the redacted marker."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(jsonable(data), status=status)

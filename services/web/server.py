"""The config page's HTTP server: security middleware, start/stop, the ``web`` subsystem."""

from __future__ import annotations

import asyncio
import base64
import logging
import weakref
from pathlib import Path
from typing import Any

from aiohttp import web, web_response
from aiohttp.typedefs import Handler

from services.web import tls
from services.web.auth import limited_check, reload_if_changed
from services.web.context import (
    CONTEXT,
    COOKIE,
    CSRF_HEADER,
    MAX_BODY,
    SESSION_KEY,
    UNSAFE_METHODS,
    ApiError,
    WebContext,
)
from services.web.events import install_event_counter
from services.web.guard import GuardedListener, Limits
from services.web.host import PageHost
from services.web.listen_check import default_listen, parse_listen
from services.web.passwords import PasswordFile, PasswordFileError
from services.web.preview import preview_of
from services.web.routes import ROUTES
from services.web.sessions import LoginLimiter, Session

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
#: Reachable without a session: liveness, login, and the page's own files.
PUBLIC_PATHS = frozenset({"/api/health", "/api/login", "/", "/favicon.ico",
                          "/room", "/api/room/ws"})  # the room checks guest links itself
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _hide_server_version() -> None:
    """Errors aiohttp answers itself (a malformed request line, a bad Content-Length)
    never reach the app's hooks and would name the Python and aiohttp versions before
    any login (5.6-2); its default ``Server`` value lives in this module attribute."""
    web_response.SERVER_SOFTWARE = "edgeroom"


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


def _own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON with a reason (never a bare 500 page); security headers."""
    try:
        response = await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {413: f"request body is larger than {MAX_BODY} bytes"}.get(exc.status,
                                                                              exc.reason)
        response = web.json_response({"error": exc.reason.upper().replace(" ", "_"),
                                      "message": reason}, status=exc.status,
                                     headers={k: v for k, v in exc.headers.items()
                                              if k in ("Allow", "Retry-After")})
    except asyncio.CancelledError:
        raise
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = web.json_response({"error": "INTERNAL", "message": "internal error"},
                                     status=500)
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sessions for everything but the public paths; CSRF token and Origin on changes."""
    ctx = request.app[CONTEXT]
    unsafe = request.method in UNSAFE_METHODS
    if unsafe:
        origin = request.headers.get("Origin")
        if origin is not None and origin != _own_origin(request):
            raise ApiError(403, "BAD_ORIGIN", "cross-origin request refused")
    if _is_public(request.path):
        return await handler(request)
    reload_if_changed(ctx)
    session = ctx.sessions.get(request.cookies.get(COOKIE))
    if session is None and request.path == "/metrics":
        session = await _basic_auth(request, ctx)
    if session is None:
        raise ApiError(401, "UNAUTHORIZED", "log in first",
                       headers={"WWW-Authenticate": 'Cookie realm="edgeroom"'})
    if unsafe and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "BAD_CSRF_TOKEN", f"missing or wrong {CSRF_HEADER} header")
    request[SESSION_KEY] = session
    return await handler(request)


async def _basic_auth(request: web.Request, ctx: WebContext) -> Session | None:
    """``/metrics`` also takes HTTP Basic auth (user ``admin``) for Prometheus scrapers."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    remote = request.remote or "?"
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except ValueError:
        return None
    if not password:
        return None
    # A wrong user name fails like a wrong password, and counts toward the limit.
    if await limited_check(ctx, remote, password if user == "admin" else "", "/metrics"):
        return Session("", "", remote, 0.0, 0.0)  # this request only
    return None


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "edgeroom"  # no version before login (5.6-2)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/") or request.path == "/metrics":
        response.headers.setdefault("Cache-Control", "no-store")
    if request.app[CONTEXT].https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


async def _on_shutdown(app: web.Application) -> None:
    app[CONTEXT].closing.set()  # ends the event streams
    preview = preview_of(app[CONTEXT].appliance.extras)
    if preview is not None:
        await preview.close()  # the camera previews end with the server


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


#: The page's own files: nothing else is served (and a miss is a JSON 404, like the API's).
STATIC_FILES = frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())


async def _static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise ApiError(404, "NOT_FOUND", f"no file {name[:64]!r}")
    return web.FileResponse(STATIC_DIR / name)


def build_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, auth_middleware],
                          client_max_size=MAX_BODY)
    app[CONTEXT] = ctx
    app.on_response_prepare.append(_on_prepare)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app


#: The login counts of each appliance outlive a restart of its web server (a crash or a
#: change of a ``web`` key must not wipe a lockout).
_LIMITERS: weakref.WeakKeyDictionary[PageHost, LoginLimiter] = weakref.WeakKeyDictionary()


def _limiter_of(appliance: PageHost) -> LoginLimiter:
    config = appliance.config.web
    limiter = _LIMITERS.get(appliance)
    if limiter is None:
        limiter = _LIMITERS[appliance] = LoginLimiter()
    limiter.limit, limiter.global_limit = config.login_failures, config.login_failures_total
    return limiter


class WebServer:
    """The page and its API for one appliance: ``async with WebServer(app) as server``."""

    def __init__(self, appliance: PageHost, listen: str | None = None,
                 https: bool | None = None) -> None:
        config = appliance.config.web
        self.appliance = appliance
        self.listen = listen or config.listen or default_listen(appliance.sim)
        self.https = config.https if https is None else https
        self.passwords = PasswordFile(appliance.state_dir)
        self.limits = Limits(max_connections=config.max_connections,
                             header_seconds=float(config.header_seconds))
        self.context = WebContext(
            appliance, self.passwords, https=self.https,
            limiter=_limiter_of(appliance),
            body_seconds=float(config.body_seconds))
        self._runner: web.AppRunner | None = None
        self.listener: GuardedListener | None = None
        self.url = ""

    def __repr__(self) -> str:
        return f"<WebServer {self.url or self.listen} {'up' if self._runner else 'down'}>"

    async def start(self) -> str:
        """Listen; returns the base URL (with the real port if ``listen`` asked for 0)."""
        host, port = parse_listen(self.listen)
        self.appliance.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            password = await asyncio.to_thread(self.passwords.ensure)  # scrypt: off the loop
        except PasswordFileError as exc:
            log.error("%s; run `edgeroom password reset`", exc)
            raise
        if password is not None:
            log.warning("config page admin password (shown only this once): %s", password)
        ssl_context = None
        if self.https:
            ssl_context = await asyncio.to_thread(tls.server_context,
                                                  self.appliance.state_dir, host)
        install_event_counter(self.appliance)
        _hide_server_version()
        runner = web.AppRunner(build_app(self.context), access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        assert runner.server is not None
        listener = GuardedListener(runner.server, host, port, self.limits, ssl_context)
        try:
            await listener.start()
        except BaseException:
            await listener.close()
            await runner.cleanup()
            raise
        self._runner, self.listener = runner, listener
        self.context.listener = listener
        bound: Any = listener.addresses[0] if listener.addresses else (host, port)
        real_port = bound[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if self.https else 'http'}://{shown}:{real_port}"
        log.info("config page on %s", self.url)
        return self.url

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        listener, self.listener = self.listener, None
        if listener is not None:
            await listener.close()
        if runner is not None:
            self.context.closing.set()
            await runner.cleanup()

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def run_web(appliance: PageHost) -> None:
    """The ``web`` subsystem: serve until cancelled."""
    async with WebServer(appliance):
        await asyncio.Event().wait()

"""Log in, log out, change the password."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from services.web.context import (
    COOKIE,
    ApiError,
    WebContext,
    context,
    json_response,
    read_json,
    session_of,
)
from services.web.passwords import MAX_LENGTH, MIN_LENGTH, PasswordFileError
from services.web.schema import obj, string

log = logging.getLogger(__name__)

LOGIN_BODY = obj({"password": string(1, MAX_LENGTH)}, required=("password",))
PASSWORD_BODY = obj({"current": string(1, MAX_LENGTH), "new": string(MIN_LENGTH, MAX_LENGTH)},
                    required=("current", "new"))


async def check_password(ctx: WebContext, password: str) -> bool:
    """scrypt in a thread, at most two at once (each needs 16 MiB)."""
    async with ctx.hashing:
        try:
            return await asyncio.to_thread(ctx.passwords.verify, password)
        except PasswordFileError as exc:
            log.error("%s", exc)
            raise ApiError(503, "NO_PASSWORD", "the admin password is not set; "
                                               "run `edgeroom password reset`") from exc


def reload_if_changed(ctx: WebContext) -> None:
    """Pick up a hash written by another process (`edgeroom password reset`); that ends
    every session. Checked on every login and every request that needs a session."""
    if ctx.passwords.changed():
        dropped = ctx.sessions.clear()
        log.warning("the admin password was changed elsewhere; %d sessions ended", dropped)


async def limited_check(ctx: WebContext, remote: str, password: str, what: str) -> bool:
    """Check a password under the login limit (the page's login, the password change,
    ``/metrics`` Basic auth): the attempt is reserved before the hash is checked, so
    concurrent guesses get no more checks than the limit allows; 429 when refused."""
    retry = ctx.limiter.reserve(remote)
    if retry:
        raise ApiError(429, "TOO_MANY_ATTEMPTS",
                       f"too many failed logins; try again in {retry} s",
                       headers={"Retry-After": str(retry)})
    ok = False
    try:
        reload_if_changed(ctx)
        ok = await check_password(ctx, password)
    finally:
        locked = ctx.limiter.settle(remote, ok)
    if not ok:
        log.warning("wrong password (%s) from %s%s", what, remote,
                    f"; locked out for {locked} s" if locked else "")
    return ok


def _remote(request: web.Request) -> str:
    return request.remote or "unknown"


def _set_cookie(ctx: WebContext, response: web.Response, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=ctx.https,
                        path="/")


async def login(request: web.Request) -> web.Response:
    ctx = context(request)
    remote = _remote(request)
    body = await read_json(request, LOGIN_BODY)
    if not await limited_check(ctx, remote, body["password"], "login"):
        raise ApiError(401, "WRONG_PASSWORD", "wrong password")
    session = ctx.sessions.create(remote, replaces=request.cookies.get(COOKIE))
    log.info("login from %s", remote)
    response = json_response({"csrf_token": session.csrf_token})
    _set_cookie(ctx, response, session.token)
    return response


async def session_info(request: web.Request) -> web.Response:
    """The CSRF token of the caller's session (a reloaded page fetches it again)."""
    return json_response({"csrf_token": session_of(request).csrf_token})


async def logout(request: web.Request) -> web.Response:
    ctx = context(request)
    await read_json(request, obj({}))
    ctx.sessions.drop(request.cookies.get(COOKIE))
    response = json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def change_password(request: web.Request) -> web.Response:
    ctx = context(request)
    remote = _remote(request)
    body = await read_json(request, PASSWORD_BODY)
    if not await limited_check(ctx, remote, body["current"], "password change"):
        raise ApiError(403, "WRONG_PASSWORD", "the current password is wrong")
    async with ctx.hashing:
        await asyncio.to_thread(ctx.passwords.write, body["new"])
    dropped = ctx.sessions.clear()
    log.warning("admin password changed from %s; %d sessions ended", remote, dropped)
    ctx.appliance.bus.publish("password-changed", {"sessions_ended": dropped})
    session = ctx.sessions.create(remote)
    response = json_response({"csrf_token": session.csrf_token})
    _set_cookie(ctx, response, session.token)
    return response

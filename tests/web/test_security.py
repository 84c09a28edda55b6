"""ETSI EN 303 645 provisions the page must keep: sessions, CSRF, rate limit, no leaks."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import aiohttp

from device import __version__
from services.web.openapi import document
from services.web.routes import ROUTES
from tests.web.conftest import Served, client, login

UNSAFE = {"post", "patch", "put", "delete"}


def _operations(public: bool | None = None) -> list[tuple[str, str, dict[str, object]]]:
    doc = document(ROUTES, __version__)
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            is_public = op.get("security") == []
            if public is None or is_public == public:
                concrete = re.sub(r"\{[^}]+\}", "x", path)
                out.append((method, concrete, op))
    return out


async def test_every_protected_route_answers_401_without_a_session(
        served: Served, http: aiohttp.ClientSession) -> None:
    operations = _operations(public=False)
    assert len(operations) >= 20
    for method, path, _ in operations:
        async with http.request(method.upper(), f"{served.url}{path}", json={}) as r:
            assert r.status == 401, (method, path, r.status)
            assert (await r.json())["error"] == "UNAUTHORIZED"
    # Only liveness, login and the room page are open; the room's signalling checks the
    # session or a guest link itself (tests/guest), and refuses anyone without either.
    assert sorted(p for _, p, _ in _operations(public=True)) == [
        "/api/health", "/api/login", "/api/room/ws", "/room"]
    async with http.get(f"{served.url}/api/room/ws") as r:
        assert r.status in (403, 404), r.status  # 404: this appliance has no guest room


async def test_state_changing_routes_need_csrf_token_and_own_origin(
        served: Served, http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    unsafe = [(m, p) for m, p, _ in _operations(public=False) if m in UNSAFE]
    assert len(unsafe) >= 12
    for method, path in unsafe:
        url = f"{served.url}{path}"
        async with http.request(method.upper(), url, json={}) as r:
            assert r.status == 403, (method, path)
            assert (await r.json())["error"] == "BAD_CSRF_TOKEN"
        async with http.request(method.upper(), url, json={},
                                headers={"X-CSRF-Token": "wrong"}) as r:
            assert r.status == 403, (method, path)
        async with http.request(method.upper(), url, json={},
                                headers={"X-CSRF-Token": csrf,
                                         "Origin": "http://evil.example"}) as r:
            assert r.status == 403, (method, path)
            assert (await r.json())["error"] == "BAD_ORIGIN"
    # With both (and the page's own Origin) the request gets through to validation.
    async with http.post(f"{served.url}/api/video", json={"enabled": "x"},
                         headers={"X-CSRF-Token": csrf, "Origin": served.url}) as r:
        assert r.status == 400
    # A foreign Origin cannot log in either (login CSRF).
    async with client() as other:
        async with other.post(f"{served.url}/api/login", json={"password": served.password},
                              headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403


async def test_rate_limit_engages_on_the_sixth_bad_password(
        served: Served, http: aiohttp.ClientSession) -> None:
    url = f"{served.url}/api/login"
    for attempt in range(1, 6):
        async with http.post(url, json={"password": f"wrong-{attempt}"}) as r:
            assert r.status == 401, attempt
    async with http.post(url, json={"password": "wrong-6"}) as r:
        assert r.status == 429
        retry = int(r.headers["Retry-After"])
        assert 590 <= retry <= 600
    # Locked out even with the right password, for the whole 10 minutes.
    async with http.post(url, json={"password": served.password}) as r:
        assert r.status == 429


async def test_password_change_logs_out_every_other_session(
        served: Served, http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    async with client() as other:
        await login(other, served)
        async with other.get(f"{served.url}/api/status") as r:
            assert r.status == 200
        async with other.get(f"{served.url}/api/events") as stream:
            await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
            new = "a-much-better-password"
            async with http.post(f"{served.url}/api/password", headers={"X-CSRF-Token": csrf},
                                 json={"current": served.password, "new": new}) as r:
                assert r.status == 200, await r.text()
                fresh = (await r.json())["csrf_token"]
            # The other page's event stream ends with its session.
            rest = await asyncio.wait_for(stream.content.read(), 10)
            assert b"password-changed" in rest
        async with other.get(f"{served.url}/api/status") as r:
            assert r.status == 401
    async with http.get(f"{served.url}/api/status") as r:
        assert r.status == 200  # the caller got a new session
    async with http.post(f"{served.url}/api/logout", json={},
                         headers={"X-CSRF-Token": fresh}) as r:
        assert r.status == 200
    async with http.get(f"{served.url}/api/status") as r:
        assert r.status == 401
    async with client() as third:
        async with third.post(f"{served.url}/api/login", json={"password": served.password}) as r:
            assert r.status == 401
        async with third.post(f"{served.url}/api/login", json={"password": new}) as r:
            assert r.status == 200


async def test_wrong_current_password_is_refused(served: Served,
                                                 http: aiohttp.ClientSession) -> None:
    csrf = await login(http, served)
    async with http.post(f"{served.url}/api/password", headers={"X-CSRF-Token": csrf},
                         json={"current": "not-it", "new": "another-password"}) as r:
        assert r.status == 403
    async with http.post(f"{served.url}/api/password", headers={"X-CSRF-Token": csrf},
                         json={"current": served.password, "new": "short"}) as r:
        assert r.status == 400
        assert "shorter than 10" in (await r.json())["message"]


async def test_cli_reset_ends_running_sessions(served: Served, http: aiohttp.ClientSession,
                                               edgeroom_cmd: list[str],
                                               clean_env: dict[str, str]) -> None:
    await login(http, served)
    proc = await asyncio.create_subprocess_exec(
        *edgeroom_cmd, "password", "reset", "--state-dir", str(served.appliance.state_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 1  # the password, alone
    new = lines[0]
    assert re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}", new)
    async with http.get(f"{served.url}/api/status") as r:
        assert r.status == 401
    async with http.post(f"{served.url}/api/login", json={"password": new}) as r:
        assert r.status == 200


async def test_nothing_about_the_device_before_login(served: Served,
                                                     http: aiohttp.ClientSession) -> None:
    import socket

    from device import __version__

    secrets = [__version__, socket.gethostname(), str(served.appliance.state_dir)]
    bodies = []
    for path in ("/", "/static/app.js", "/api/health", "/api/status", "/api/openapi.json",
                 "/metrics"):
        async with http.get(f"{served.url}{path}") as r:
            bodies.append((path, await r.text() + str(dict(r.headers))))
    async with http.post(f"{served.url}/api/login", json={"password": "x"}) as r:
        bodies.append(("login", await r.text() + str(dict(r.headers))))
    for path, text in bodies:
        for secret in secrets:
            assert secret not in text, (path, secret)


async def test_malformed_http_reveals_no_versions(served: Served) -> None:
    from urllib.parse import urlsplit

    from device import __version__

    parts = urlsplit(served.url)
    for raw in (b"GARBAGE\r\n\r\n",
                b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port), 10)
        try:
            writer.write(raw)
            await writer.drain()
            answer = (await asyncio.wait_for(reader.read(4096), 10)).decode(errors="replace")
        finally:
            writer.close()
        assert answer.startswith("HTTP/1.") and " 400 " in answer.split("\r\n")[0]
        assert "aiohttp" not in answer and "Python" not in answer
        assert __version__ not in answer


def test_password_file_is_private(tmp_path: Path) -> None:
    from services.web.passwords import PasswordFile

    pw = PasswordFile(tmp_path)
    password = pw.ensure()
    assert password is not None and pw.ensure() is None  # made once
    assert pw.path.stat().st_mode & 0o777 == 0o600
    text = pw.path.read_text()
    assert password not in text and text.startswith("scrypt$")
    assert pw.verify(password) and not pw.verify(password + "x")

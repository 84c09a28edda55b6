"""Items 2 and 7: the login limit holds against concurrent guesses, many addresses and
``/metrics``; a password reset on the running box is picked up by the next login."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.web import WebServer
from services.web.passwords import PasswordFile
from tests.abuse.conftest import ROOT, TIMEOUT, Served, serve
from tests.harness.polling import wait_until

WRONG = "wrong-password-0000"


class CountingVerify:
    """Counts the scrypt checks the server really runs (then runs them)."""

    def __init__(self, passwords: PasswordFile) -> None:
        self.real = passwords.verify
        self.calls = 0
        passwords.verify = self  # type: ignore[method-assign]

    def __call__(self, password: str) -> bool:
        self.calls += 1
        return self.real(password)


@pytest.fixture
async def box(tmp_path: Path, log_ring: None) -> AsyncIterator[Served]:
    # Enough connections for every guess of the burst to be in flight at once.
    async with serve(tmp_path, max_connections=1024) as served:
        yield served


def _session(local_ip: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A client whose connections come from ``local_ip`` (any 127.x address: loopback)."""
    connector = aiohttp.TCPConnector(limit=0, local_addr=(local_ip, 0), force_close=True)
    return aiohttp.ClientSession(connector=connector,
                                 timeout=aiohttp.ClientTimeout(total=60))


async def _login(http: aiohttp.ClientSession, url: str, password: str) -> int:
    async with http.post(f"{url}/api/login", json={"password": password}) as r:
        body = await r.json()
        if r.status == 429:
            assert body["error"] == "TOO_MANY_ATTEMPTS"
            assert int(r.headers["Retry-After"]) >= 1
        return r.status


async def test_concurrent_guesses_get_no_more_checks_than_the_limit(box: Served) -> None:
    checks = CountingVerify(box.server.passwords)
    async with _session() as http:
        guesses = [asyncio.create_task(_login(http, box.url, f"{WRONG}-{i}"))
                   for i in range(299)]
        # The right password comes at the end of the burst, while guesses are in flight.
        await wait_until(lambda: checks.calls > 0, TIMEOUT)
        right = await asyncio.wait_for(_login(http, box.url, box.password), TIMEOUT)
        statuses = await asyncio.wait_for(asyncio.gather(*guesses), 60)
    assert checks.calls <= 5, f"{checks.calls} password checks for one address"
    assert statuses.count(401) == checks.calls
    assert statuses.count(429) == 299 - checks.calls
    assert right == 429, "the right password got through a locked address"


async def test_many_addresses_hit_the_global_failure_budget(box: Served) -> None:
    checks = CountingVerify(box.server.passwords)
    statuses: list[int] = []

    async def four_guesses(ip: str) -> None:
        async with _session(ip) as http:
            statuses.extend(await asyncio.gather(
                *(_login(http, box.url, f"{WRONG}-{ip}-{i}") for i in range(4))))

    addresses = [f"127.0.0.{n}" for n in range(2, 22)]
    await asyncio.wait_for(asyncio.gather(*(four_guesses(ip) for ip in addresses)), 60)
    assert len(statuses) == 80
    assert checks.calls <= 20, f"{checks.calls} checks: no global cap"
    assert statuses.count(401) == checks.calls
    assert statuses.count(429) == 80 - checks.calls
    # While the budget is spent, even an address that never failed is refused.
    async with _session("127.0.0.30") as http:
        assert await _login(http, box.url, box.password) == 429
    assert checks.calls <= 20


async def test_metrics_basic_auth_shares_the_limit(box: Served) -> None:
    checks = CountingVerify(box.server.passwords)

    async def scrape(http: aiohttp.ClientSession, password: str, user: str = "admin") -> int:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        async with http.get(f"{box.url}/metrics",
                            headers={"Authorization": f"Basic {token}"}) as r:
            await r.read()
            return r.status

    async with _session() as http:
        assert await scrape(http, box.password) == 200
        assert await scrape(http, box.password, user="root") == 401  # counts as a failure
        assert box.server.context.limiter.retry_after("127.0.0.1") == 0
        statuses = await asyncio.wait_for(asyncio.gather(
            *(scrape(http, f"{WRONG}-{i}") for i in range(100))), 60)
        assert checks.calls <= 1 + 5  # the right one; the wrong user and 4 guesses fail
        assert statuses.count(429) >= 96
        # Locked out by the guesses over Basic auth: the page's login is refused too.
        assert await _login(http, box.url, box.password) == 429
        assert await scrape(http, box.password) == 429


async def test_password_reset_on_a_running_box_is_picked_up_by_the_next_login(
        box: Served) -> None:
    old = box.password
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "device", "password", "reset", "--state-dir",
         str(box.appliance.state_dir)], capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)
    new = result.stdout.strip()
    assert new and new != old
    async with _session() as http:  # nothing but logins: no other request reloads it
        assert await _login(http, box.url, new) == 200
        assert await _login(http, box.url, old) == 401


async def test_a_lockout_outlives_a_restart_of_the_web_server(tmp_path: Path,
                                                             log_ring: None) -> None:
    async with serve(tmp_path) as box:
        async with _session() as http:
            for i in range(5):
                assert await _login(http, box.url, f"{WRONG}-{i}") == 401
            assert await _login(http, box.url, box.password) == 429
        await asyncio.wait_for(box.server.close(), TIMEOUT)  # e.g. a change of web.https
        again = WebServer(box.appliance)
        await asyncio.wait_for(again.start(), TIMEOUT)
        try:
            async with _session() as http:
                assert await _login(http, again.url, box.password) == 429
        finally:
            await asyncio.wait_for(again.close(), TIMEOUT)

"""The HTTP API of an appliance process, from a host of the test network."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp

from tests.harness.appliance import ApplianceProcess
from tests.harness.netns import Network, NsLoop


def password_from_log(app: ApplianceProcess, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"admin password \(shown only this once\): (\S+)", app.log_text())
        if m:
            return m.group(1)
        assert app.alive(), app.log_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no password in the log: {app.log_text()[-3000:]}")


class ApiClient:
    """Logs in to ``app`` (listening on ``0.0.0.0:8080``) from its own host ``name``;
    ``call(method, path, body)`` -> (status, json)."""

    def __init__(self, network: Network, app: ApplianceProcess, name: str) -> None:
        self.app = app
        self.base = f"http://{app.host.ip}:8080"
        self.loop = NsLoop(network.add_host(name))
        self._session: aiohttp.ClientSession | None = None
        self._csrf = ""

    def login(self, timeout: float = 30.0) -> None:
        password = password_from_log(self.app)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.loop.run(self._login(password), 10)
                return
            except (aiohttp.ClientError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    async def _login(self, password: str) -> None:
        if self._session is None:
            # unsafe: the cookie comes from an IP address, which the default jar refuses
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with self._session.post(f"{self.base}/api/login",
                                      json={"password": password}) as r:
            assert r.status == 200, await r.text()
            self._csrf = (await r.json())["csrf_token"]

    def call(self, method: str, path: str, body: Any = None,
             timeout: float = 20.0) -> tuple[int, Any]:
        return self.loop.run(self._call(method, path, body), timeout)

    async def _call(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        assert self._session is not None, "log in first"
        headers = {"X-CSRF-Token": self._csrf} if method != "GET" else {}
        async with self._session.request(method, f"{self.base}{path}", json=body,
                                         headers=headers) as r:
            return r.status, await r.json()

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            self.loop.run(session.close(), 10)
        self.loop.close()

"""The HTTP API of an appliance process, from a host of the test network."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
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

    def wait_event(self, name: str, match: Callable[[dict[str, Any]], bool] = lambda d: True,
                   then: tuple[str, str, Any] | None = None,
                   timeout: float = 20.0) -> dict[str, Any]:
        """The data of the first ``name`` event from ``GET /api/events`` that ``match``
        accepts; ``then`` (method, path, body) is called once the stream is open, and
        must answer 200."""
        return self.loop.run(self._wait_event(name, match, then), timeout)

    async def _wait_event(self, name: str, match: Callable[[dict[str, Any]], bool],
                          then: tuple[str, str, Any] | None) -> dict[str, Any]:
        assert self._session is not None, "log in first"
        async with self._session.get(f"{self.base}/api/events") as r:
            assert r.status == 200, await r.text()
            if then is not None:
                status, body = await self._call(*then)
                assert status == 200, body
            event = ""
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and event == name:
                    data = json.loads(line[len("data: "):])["data"]  # in its envelope
                    if match(data):
                        return dict(data)
        raise AssertionError(f"the event stream ended before a matching {name!r} event")

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            self.loop.run(session.close(), 10)
        self.loop.close()

"""The soak's browser-like client of the config page: what an open page tab does.

It logs in, polls ``GET /api/status`` every few seconds, keeps ``GET /api/events`` open
(reconnecting as a page would), and leaves and re-joins the room once a minute (after
an optional quiet start). It runs on an event loop inside the appliance's network
namespace and counts what happened: requests, failures by kind, events received, joins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

POLL_S = 3.0
JOIN_EVERY_S = 60.0
LEFT_FOR_S = 5.0
#: After a join the room's media threads and sockets take a few seconds to settle.
SETTLE_S = 10.0
TIMEOUT = aiohttp.ClientTimeout(total=20)


@dataclass
class ClientCounts:
    requests: int = 0
    polls: int = 0
    events: int = 0
    event_streams: int = 0
    joins: int = 0
    leaves: int = 0
    logins: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    last_failure: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "polls": self.polls, "events": self.events,
                "event_streams": self.event_streams, "joins": self.joins,
                "leaves": self.leaves, "logins": self.logins,
                "failures": dict(self.failures), "last_failure": self.last_failure}


class PageClient:
    def __init__(self, url: str, password: str, quiet_s: float = 0.0) -> None:
        self.url = url
        self.quiet_s = quiet_s  # no leave/join for this long from the start
        self.password = password
        self.counts = ClientCounts()
        self._csrf = ""
        self._http: aiohttp.ClientSession | None = None
        self._started = asyncio.Event()  # run() has its HTTP session
        self._logins = asyncio.Lock()
        self._session = 0  # how many logins succeeded: which session the cookie holds
        self._changing_until = 0.0  # monotonic time until which a leave/join is under way

    @property
    def changing_room(self) -> bool:
        """A leave or join is under way (or just done): the box is not in its steady state."""
        return time.monotonic() < self._changing_until

    def _fail(self, kind: str, detail: str) -> None:
        self.counts.failures[kind] += 1
        self.counts.last_failure = f"{time.strftime('%H:%M:%S')} {kind}: {detail}"
        log.warning("page client: %s: %s", kind, detail)

    async def _login(self, stale: int) -> None:
        """Log in unless another task already replaced session ``stale`` meanwhile.

        One login at a time, and only for the session that was refused: a login
        replaces the cookie's session, so a second one would end the first one's
        event stream (which the server ties to the session it opened with)."""
        assert self._http is not None
        async with self._logins:
            if self._session != stale:
                return
            async with self._http.post(f"{self.url}/api/login",
                                       json={"password": self.password}) as r:
                self.counts.requests += 1
                if r.status != 200:
                    raise RuntimeError(f"login answered {r.status}: {await r.text()}")
                self._csrf = (await r.json())["csrf_token"]
            self.counts.logins += 1
            self._session += 1

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        await self._started.wait()
        assert self._http is not None
        await self._login(stale=0)  # the first request waits for (or makes) the first login
        for attempt in range(2):
            session = self._session
            async with self._http.request(method, f"{self.url}{path}", json=body,
                                          headers={"X-CSRF-Token": self._csrf}) as r:
                self.counts.requests += 1
                if r.status == 401 and attempt == 0:
                    await self._login(stale=session)
                    continue
                if r.status >= 400:
                    raise RuntimeError(f"{method} {path} answered {r.status}: "
                                       f"{(await r.text())[:200]}")
                return await r.json()
        return None

    async def status(self) -> dict[str, Any]:
        """One ``GET /api/status`` (the client must be running)."""
        data: dict[str, Any] = await self._request("GET", "/api/status")
        return data

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            self._http = http
            self._started.set()
            await self._login(stale=0)
            tasks = [asyncio.create_task(self._poll(), name="soak:poll"),
                     asyncio.create_task(self._events(), name="soak:events"),
                     asyncio.create_task(self._join_leave(), name="soak:join-leave")]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            try:
                await self._request("GET", "/api/status")
                self.counts.polls += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail("status", f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(POLL_S)

    async def _events(self) -> None:
        assert self._http is not None
        while True:
            session = self._session
            try:
                async with self._http.get(f"{self.url}/api/events",
                                          timeout=aiohttp.ClientTimeout(
                                              total=None, sock_read=60)) as r:
                    if r.status == 401:
                        await self._login(stale=session)
                        continue
                    if r.status != 200:
                        raise RuntimeError(f"events answered {r.status}")
                    self.counts.event_streams += 1
                    async for line in r.content:
                        if line.startswith(b"event:") or line.startswith(b"data:"):
                            self.counts.events += line.startswith(b"data:")
                raise RuntimeError("the event stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail("events", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(2.0)

    async def _join_leave(self) -> None:
        await asyncio.sleep(self.quiet_s)
        while True:
            await asyncio.sleep(JOIN_EVERY_S - LEFT_FOR_S)
            self._changing_until = float("inf")
            try:
                await self._request("POST", "/api/room/leave", {})
                self.counts.leaves += 1
                await asyncio.sleep(LEFT_FOR_S)
                await self._request("POST", "/api/room/join", {})
                self.counts.joins += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail("join-leave", f"{type(exc).__name__}: {exc}")
            finally:
                self._changing_until = time.monotonic() + SETTLE_S

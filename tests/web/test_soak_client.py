"""The soak's page client keeps one session, as a page tab does.

A request made while the client was still logging in (the soak samples the status
from the start) got a 401 and logged in a second time. That login replaced the first
session, and the event stream opened with the other cookie then ended when its session
expired, 30 minutes later, though the page polled all along.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import bench.soak_client as soak_client
from bench.soak_client import PageClient
from tests.web.conftest import Served


async def test_a_request_while_logging_in_shares_the_one_session(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soak_client, "POLL_S", 0.3)
    sessions = served.server.context.sessions
    sessions.idle_timeout = 2.0  # the polls keep the session; the stream alone does not
    client = PageClient(served.url, served.password, quiet_s=3600)
    running = asyncio.create_task(client.run())
    try:
        await asyncio.sleep(0)  # the client has started logging in
        statuses = await asyncio.gather(*(client.status() for _ in range(3)))
        assert all(s["state"] == "idle" for s in statuses)
        deadline = time.monotonic() + 6.0  # three idle timeouts
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            assert not client.counts.failures, client.counts.last_failure
        assert client.counts.logins == 1
        assert client.counts.event_streams == 1
        assert len(sessions) == 1
        assert client.counts.polls >= 10
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

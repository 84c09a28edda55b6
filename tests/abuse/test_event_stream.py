"""Item 6: the event stream ends with its session even while events flow 5 times a second."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from tests.abuse.conftest import ROOT, TIMEOUT, Served, client, login

#: Logout takes effect at the next event or within a second when quiet; allow for load.
PROMPT = 3.0


@asynccontextmanager
async def mic_levels(served: Served) -> AsyncIterator[None]:
    """``mic-level`` events five times a second, as while the mic is open in a room."""
    async def publish() -> None:
        while True:
            served.appliance.bus.publish("mic-level", {"level_dbfs": -20.0})
            await asyncio.sleep(0.2)

    task = asyncio.create_task(publish(), name="test:mic-levels")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _stream_ends_within(stream: aiohttp.ClientResponse, seconds: float) -> float:
    """Reads the stream until it ends; returns when it ended (monotonic)."""
    async def drain() -> None:
        while await stream.content.readany():
            pass

    await asyncio.wait_for(drain(), seconds)
    return time.monotonic()


async def _open_stream(http: aiohttp.ClientSession, served: Served) -> aiohttp.ClientResponse:
    stream = await http.get(f"{served.url}/api/events")
    assert stream.status == 200
    line = await asyncio.wait_for(stream.content.readline(), TIMEOUT)
    assert line.startswith(b"retry:")
    return stream


async def test_logout_ends_a_busy_stream(served: Served) -> None:
    async with client() as http, mic_levels(served):
        csrf = await login(http, served)
        stream = await _open_stream(http, served)
        # Events flow: several mic levels arrive.
        for _ in range(3):
            while b"mic-level" not in await asyncio.wait_for(stream.content.readline(),
                                                             TIMEOUT):
                pass
        start = time.monotonic()
        async with http.post(f"{served.url}/api/logout", json={},
                             headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        end = await _stream_ends_within(stream, PROMPT + 2)
        assert end - start < PROMPT
        stream.release()


async def test_password_change_ends_a_busy_stream(served: Served) -> None:
    async with client() as http, client() as other, mic_levels(served):
        await login(http, served)
        csrf = await login(other, served)
        stream = await _open_stream(http, served)
        start = time.monotonic()
        async with other.post(f"{served.url}/api/password",
                              json={"current": served.password, "new": "a-new-password-1"},
                              headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        end = await _stream_ends_within(stream, PROMPT + 2)
        assert end - start < PROMPT
        stream.release()


async def test_cli_password_reset_ends_a_busy_stream(served: Served) -> None:
    async with client() as http, mic_levels(served):
        await login(http, served)
        stream = await _open_stream(http, served)
        start = time.monotonic()
        await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "device", "password", "reset", "--state-dir",
            str(served.appliance.state_dir)], capture_output=True, timeout=60, check=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        reset_done = time.monotonic()
        end = await _stream_ends_within(stream, PROMPT + 2)
        assert end - reset_done < PROMPT, (reset_done - start, end - reset_done)
        stream.release()

"""Item 1: concurrent config changes restart a subsystem once, never twice at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest

from device.supervisor import Supervisor
from tests.abuse.conftest import ChildAppliance, child_login, client, free_port
from tests.harness.polling import wait_until

pytestmark = pytest.mark.slow


async def test_a_burst_of_restarts_coalesces_into_one_run_at_a_time() -> None:
    """The supervisor itself: 200 concurrent restarts of one subsystem."""
    sup = Supervisor(base=0.01, cap=0.05)
    running = 0
    most = 0
    starts = 0

    async def subsystem() -> None:
        nonlocal running, most, starts
        starts += 1
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.02)  # starting up
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.02)  # stopping takes a while too (like Janus)
            running -= 1

    sup.add("room", subsystem)
    try:
        await asyncio.wait_for(asyncio.gather(*(sup.restart("room") for _ in range(200))), 10)
        await asyncio.sleep(0.1)
        assert most == 1, f"{most} copies of the subsystem ran at once"
        assert running == 1
        # The first request restarts at once; the other 199 share one follow-up restart.
        assert starts <= 3, starts
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "subsystem:room"]
        assert len(tasks) == 1
    finally:
        await asyncio.wait_for(sup.stop(), 10)
    assert running == 0


async def test_restart_requested_while_stopping_starts_nothing() -> None:
    sup = Supervisor()
    started = 0

    async def subsystem() -> None:
        nonlocal started
        started += 1
        await asyncio.Event().wait()

    sup.add("room", subsystem)
    await asyncio.sleep(0.01)
    restart = asyncio.create_task(sup.restart("room"))
    await asyncio.wait_for(sup.stop(), 5)
    await asyncio.wait_for(restart, 5)
    assert all(s.task is None or s.task.done() for s in sup.subsystems.values())
    assert started == 1


async def _patch(http: aiohttp.ClientSession, app: ChildAppliance, csrf: str, i: int) -> int:
    async with http.patch(f"{app.url}/api/config",
                          json={"room": {"display_name": f"Kitchen {i}"}},
                          headers={"X-CSRF-Token": csrf}) as r:
        await r.read()
        return r.status


async def _health_ms(url: str) -> float:
    async with client() as http:
        start = time.monotonic()
        async with http.get(f"{url}/api/health") as r:
            assert r.status == 200
        return (time.monotonic() - start) * 1000


async def test_concurrent_room_changes_leave_exactly_one_janus(
        child: Callable[..., ChildAppliance]) -> None:
    app = child({"room": {"server": "local", "local_port": free_port(), "auto_join": False}})
    await _one_janus(app)

    async with client() as http:
        csrf = await child_login(http, app)
        burst = asyncio.gather(*(_patch(http, app, csrf, i) for i in range(60)))
        health = []
        while not burst.done():
            health.append(await asyncio.wait_for(_health_ms(app.url), 10))
            await asyncio.sleep(0.05)
        statuses = await asyncio.wait_for(burst, 60)
    assert set(statuses) == {200}, statuses
    # The page answered its liveness check all along (no figure here: see bench/).
    assert health, "the burst ended before a health check"
    assert max(health) < 5000, health

    # Settled: one Janus, and it stays one (no loop respawning a second one).
    await _one_janus(app)
    janus = app.children("janus")
    await asyncio.sleep(3)
    assert app.children("janus") == janus, "Janus was restarted after the burst settled"
    log = app.log_text()
    assert "local janus exited" not in log, log[-3000:]

    assert app.stop() == 0, app.log_text()[-3000:]
    assert not [pid for pid in janus if _alive(pid)], "Janus outlived the appliance"


async def _one_janus(app: ChildAppliance) -> None:
    try:
        await wait_until(lambda: len(app.children("janus")) == 1, 20, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"{len(app.children('janus'))} Janus processes: "
                             f"{app.log_text()[-3000:]}") from None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


async def test_sigterm_during_a_burst_of_restarts_stops_the_appliance(
        child: Callable[..., ChildAppliance]) -> None:
    app = child({"room": {"server": "local", "local_port": free_port(), "auto_join": False}})
    await _one_janus(app)
    async with client() as http:
        csrf = await child_login(http, app)
        burst = asyncio.gather(*(_patch(http, app, csrf, i) for i in range(40)),
                               return_exceptions=True)
        await asyncio.sleep(0.5)  # restarts under way
        janus = app.children("janus")
        code = await asyncio.to_thread(app.stop, 15.0)
        await asyncio.wait_for(burst, 30)  # answered or cut off; nothing hangs
    assert code == 0, code
    await wait_until(lambda: not [pid for pid in janus if _alive(pid)], 10, interval=0.1)

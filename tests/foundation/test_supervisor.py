from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from device.supervisor import Supervisor, backoff_delay
from drivers.common.bus import EventBus


def test_backoff_is_full_jitter_with_cap() -> None:
    upper = lambda lo, hi: hi  # noqa: E731 - the largest delay the jitter may pick
    assert backoff_delay(0, rand=upper) == 1.0
    assert backoff_delay(1, rand=upper) == 2.0
    assert backoff_delay(4, rand=upper) == 16.0
    assert backoff_delay(10, rand=upper) == 30.0
    assert backoff_delay(200, rand=upper) == 30.0
    assert all(0 <= backoff_delay(3) <= 8 for _ in range(100))


async def test_crashing_subsystem_restarts_while_other_runs() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    events = bus.subscribe()
    sup = Supervisor(emit=bus.publish, base=0.02, cap=0.5)
    crashes = 0
    ticks = 0

    async def crashy() -> None:
        nonlocal crashes
        crashes += 1
        await asyncio.sleep(0.005)
        raise RuntimeError(f"boom {crashes}")

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    sup.add("crashy", crashy)
    sup.add("steady", steady)
    try:
        await asyncio.sleep(1.5)
        assert crashes >= 4
        assert sup.subsystems["steady"].running
        assert sup.subsystems["steady"].restarts == 0
        assert ticks > 50
        snap = sup.snapshot()
        # The run in progress has started (counted in crashes) but may not have failed yet.
        assert crashes - snap["crashy"]["failures"] in (0, 1)
        assert "boom" in str(snap["crashy"]["last_error"])
        delays = sup.subsystems["crashy"].delays
        assert len(delays) == crashes or len(delays) == crashes - 1
        assert all(0 <= d <= min(0.5, 0.02 * 2**i) for i, d in enumerate(delays))
        names = [(await events.get(1)).name for _ in range(3)]
        assert "subsystem-failed" in names
    finally:
        await asyncio.wait_for(sup.stop(), 3)
    assert not any(s.running for s in sup.subsystems.values())


async def test_growing_delays_statistically() -> None:
    # Full jitter: each delay is uniform in [0, base*2**n]; averaged over many runs it grows.
    import random
    rng = random.Random(7)
    means = [sum(backoff_delay(n, 1.0, 30.0, rng.uniform) for _ in range(400)) / 400
             for n in range(5)]
    assert means == sorted(means)
    assert means[0] < 0.6 and means[4] > 6


async def test_restart_on_request() -> None:
    starts = 0

    async def service() -> None:
        nonlocal starts
        starts += 1
        await asyncio.Event().wait()

    sup = Supervisor()
    sup.add("web", service)
    await asyncio.sleep(0.01)
    await sup.restart("web")
    await asyncio.sleep(0.01)
    assert starts == 2
    await asyncio.wait_for(sup.stop(), 3)


def test_sigterm_stops_sim_run_cleanly(tmp_path: Path, edgeroom_cmd: list[str],
                                       clean_env: dict[str, str]) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = dict(clean_env, NOTIFY_SOCKET=str(sock_path))
    cfg = tmp_path / "edgeroom.toml"
    cfg.write_text('[room]\nauto_join = false\n[web]\nlisten = "127.0.0.1:0"\n')
    proc = subprocess.Popen([*edgeroom_cmd, "run", "--sim", "--config", str(cfg),
                             "--state-dir", str(tmp_path / "state")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        msg = sock.recv(4096).decode()
        assert msg.startswith("READY=1"), msg
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    out = proc.stdout.read() if proc.stdout else ""
    assert rc == 0, out
    assert elapsed < 3.0, f"took {elapsed:.2f}s to stop\n{out}"
    assert "stopping" in out


def test_probes_fail_after_their_grace_and_report_it() -> None:
    from device.supervisor import CounterProgress

    now = time.monotonic()
    last: dict[str, float | None] = {"t": now}
    counter = {"n": 0, "on": True}
    sup = Supervisor()
    sup.add_probe("flow", lambda: last["t"], grace=1.0)
    sup.add_probe("count", CounterProgress(lambda: counter["n"] if counter["on"] else None),
                  grace=0.05)

    def boom() -> float | None:
        raise RuntimeError("probe bug")

    assert sup.healthy()
    flow = sup.probes()[0]
    assert flow["ok"] and flow["active"] and flow["grace"] == 1.0
    assert isinstance(flow["last_ok_age"], float) and flow["last_ok_age"] < 1.0
    last["t"] = now - 2.0  # no progress for 2 s: past the grace
    assert not sup.healthy()
    last["t"] = None  # idle: passes, no age
    assert sup.probes()[0] == {"name": "flow", "ok": True, "active": False,
                               "last_ok_age": None, "grace": 1.0}
    time.sleep(0.1)  # the counter did not move for longer than its grace
    assert not sup.probes()[1]["ok"]
    counter["n"] += 1  # it moved: progress again
    assert sup.probes()[1]["ok"]
    counter["on"] = False
    assert sup.probes()[1]["active"] is False and sup.healthy()
    sup.add_probe("bug", boom, grace=1.0)
    bug = sup.probes()[2]
    assert not bug["ok"] and "probe bug" in str(bug["error"])
    with pytest.raises(ValueError):
        sup.add_probe("bad", lambda: None, grace=0)

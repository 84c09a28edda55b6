"""Button to effect, and process start to ``READY=1``.

Button: a whole appliance (``device.app.Appliance``, sim hardware, in the room) runs in
this process inside its own namespace. Each trial drives the ``mute`` button's mock pin
(gpiozero MockFactory) and times the first all-silent block of PCM the room's mic track
hands its Opus encoder afterwards (the track sends Opus packets, so the block is read
where it is encoded, a fraction of a millisecond before its packet leaves). The
reference is gpiozero itself: a plain ``gpiozero.Button`` on a mock pin, from driving
the pin to its ``when_pressed`` callback. Our buttons wait ``gpio.bounce_time`` (20 ms)
for a stable level before a press counts, by design.

Start: ``edgeroom run --sim`` (not joining a room) with ``NOTIFY_SOCKET`` pointing at a
socket bound here, from spawning the process to the ``READY=1`` datagram. The reference
is the floor for any Python aiortc client: spawning ``python -c "import aiortc, av"``
until it exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import subprocess
import sys
import time
from typing import Any

from bench.env import BenchRoom, percentile, wait_until
from bench.report import Row
from tests.harness.appliance import EDGEROOM, REPO, write_config
from tests.harness.lifetime import child_setup
from tests.harness.netns import NsLoop
from tests.harness.unit_env import unit_environment

log = logging.getLogger(__name__)

TRIALS = 20
STARTS = 5


async def _sender_track(app: Any) -> Any:
    backend = app.room._backend
    for sender in backend.pub_pc.getSenders():
        if sender.track is not None and sender.track.kind == "audio":
            return sender.track
    raise RuntimeError("no audio sender")


def button_to_silence(env: BenchRoom, trials: int = TRIALS) -> dict[str, Any]:
    from device.app import Appliance
    from device.config import from_dict

    host = env.host("btn")
    state = env.workdir / host.name
    state.mkdir(parents=True, exist_ok=True)
    config = from_dict({"room": {"server": env.janus.url, "room": env.new_room()},
                        "audio": {"backend": "sim"}, "video": {"enabled": False},
                        "web": {"listen": "127.0.0.1:8080"}})
    nsloop = NsLoop(host)
    app = Appliance(config, state / "edgeroom.toml", state, sim=True)
    running = nsloop.submit(app.run())
    times: list[float] = []
    failures = 0
    try:
        wait_until(lambda: app.room is not None and str(app.room.state) == "in_room"
                   and app.extras.get("buttons") is not None
                   and app.extras["buttons"].current is not None, 60, "the appliance in room")
        buttons = app.extras["buttons"].current
        track = nsloop.run(_sender_track(app))
        state_box: dict[str, Any] = {"want": None, "fut": None}
        original = track._next_samples

        async def next_samples() -> bytes:
            # the PCM the mic track hands its Opus encoder next: zeros once muted
            samples: bytes = await original()
            want, fut = state_box["want"], state_box["fut"]
            if fut is not None and not fut.done():
                silent = not any(samples)
                if silent == want:
                    fut.set_result(time.monotonic())
            return samples

        track._next_samples = next_samples

        async def trial() -> float:
            loop = asyncio.get_running_loop()
            state_box["want"], state_box["fut"] = True, loop.create_future()
            t0 = time.monotonic()
            buttons.press("mute")
            t1 = await asyncio.wait_for(state_box["fut"], 5)
            buttons.release("mute")
            await asyncio.sleep(0.1)
            state_box["want"], state_box["fut"] = False, loop.create_future()
            buttons.press("mute")  # toggle back
            await asyncio.wait_for(state_box["fut"], 5)
            buttons.release("mute")
            # the next press lands anywhere within a 20 ms mic frame, as a finger's does
            # (a fixed pause would press at the same phase of the mic's cadence each time)
            await asyncio.sleep(0.2 + random.uniform(0.0, 0.02))
            return float(t1 - t0)

        for _ in range(trials):
            try:
                times.append(nsloop.run(trial(), 15) * 1000)
            except Exception as exc:
                failures += 1
                log.warning("button trial: %r", exc)
    finally:
        app.request_stop()
        try:
            running.result(30)
        except Exception as exc:
            log.warning("appliance stop: %s", exc)
        nsloop.close()
    return {"button_ms": times, "failures": failures}


def gpiozero_floor(trials: int = TRIALS) -> list[float]:
    from gpiozero import Button, Device
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    out: list[float] = []
    try:
        button = Button(4, pin_factory=factory, bounce_time=0.02)
        pressed_at: list[float] = []
        button.when_pressed = lambda: pressed_at.append(time.monotonic())
        pin = factory.pin(4)
        for _ in range(trials):
            pressed_at.clear()
            t0 = time.monotonic()
            pin.drive_low()
            wait_until(lambda: pressed_at, 5, "gpiozero when_pressed", interval=0.001)
            out.append((pressed_at[0] - t0) * 1000)
            pin.drive_high()
            time.sleep(0.05)
        button.close()
    finally:
        factory.close()
        _ = Device
    return out


def start_to_ready(env: BenchRoom, starts: int = STARTS) -> list[float]:
    host = env.host("start")
    work = env.workdir / host.name
    work.mkdir(parents=True, exist_ok=True)
    config = write_config(work / "edgeroom.toml", {
        "room": {"server": env.janus.url, "auto_join": False},
        "web": {"listen": "127.0.0.1:8080"}})
    exe = [str(EDGEROOM)] if EDGEROOM.exists() else [sys.executable, "-m", "device"]
    out: list[float] = []
    for i in range(starts):
        path = work / f"notify{i}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(60)
        env_vars = {**os.environ, **unit_environment(work / "run"), "NOTIFY_SOCKET": str(path)}
        t0 = time.monotonic()
        proc = subprocess.Popen([*host.exec_prefix(), *exe, "run", "--sim", "--config",
                                 str(config), "--state-dir", str(work / "state")],
                                env=env_vars, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=child_setup())
        try:
            while True:
                msg = sock.recv(4096).decode(errors="replace")
                if "READY=1" in msg.split("\n"):
                    out.append((time.monotonic() - t0) * 1000)
                    break
        except TimeoutError:
            log.warning("no READY=1 within 60 s")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            sock.close()
            path.unlink(missing_ok=True)
    return out


def python_floor(env: BenchRoom, starts: int = STARTS) -> list[float]:
    host = env.host("py")
    out = []
    for _ in range(starts):
        t0 = time.monotonic()
        subprocess.run([*host.exec_prefix(), sys.executable, "-c", "import aiortc, av"],
                       cwd=REPO, check=True, timeout=60)
        out.append((time.monotonic() - t0) * 1000)
    return out


def measure() -> dict[str, Any]:
    with BenchRoom("bc") as env:
        button = button_to_silence(env)
        ready = start_to_ready(env)
        floor = python_floor(env)
    return {**button, "gpiozero_ms": gpiozero_floor(), "ready_ms": ready,
            "python_aiortc_import_ms": floor}


def run() -> list[Row]:
    m = measure()
    b, g = m["button_ms"], m["gpiozero_ms"]
    r, f = m["ready_ms"], m["python_aiortc_import_ms"]
    return [
        Row("control", "mute button to first silent frame p50", percentile(b, 50), "ms",
            percentile(g, 50), "gpiozero press callback",
            notes=f"n={len(b)}, failed={m['failures']}; 20 ms debounce by design", extra=m),
        Row("control", "mute button to first silent frame p95", percentile(b, 95), "ms",
            percentile(g, 95), "gpiozero press callback"),
        Row("control", "process start to READY=1 p50", percentile(r, 50), "ms",
            percentile(f, 50), "python -c 'import aiortc, av'", notes=f"n={len(r)}"),
    ]


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(), indent=2))

"""Idle CPU: the appliance out of a room, with nothing recording, streaming or previewing.

``edgeroom run --sim`` with ``room.auto_join = false`` is left alone for
:data:`SETTLE_S` s after it is up, then its CPU time (all threads, from ``/proc``) is
read over :data:`SECONDS` s. The reference is a bare Python that has imported aiortc and
PyAV and sleeps in an asyncio loop (the floor of any aiortc-based client), measured over
the same seconds. The threads alive at the end are in the JSON (by their OS names).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.bench_publish import proc_cpu_seconds
from bench.env import BenchRoom, wait_until
from bench.report import Row
from tests.harness.appliance import REPO

log = logging.getLogger(__name__)

SECONDS = 30.0
SETTLE_S = 5.0
BARE = ("import asyncio, sys, aiortc, av; print('ok', flush=True); "
        "asyncio.run(asyncio.sleep(3600))")


def threads(pid: int) -> list[str]:
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            out.append((task / "comm").read_text().strip())
        except OSError:
            continue
    return out


def measure() -> dict[str, Any]:
    bare = subprocess.Popen([sys.executable, "-c", BARE], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert bare.stdout is not None
        bare.stdout.readline()
        with BenchRoom("bd") as env:
            app = env.appliance("idle", {"room": {"room": env.new_room(), "auto_join": False},
                                         "audio": {"backend": "sim"},
                                         "video": {"backend": "sim"}})
            wait_until(lambda: " up (" in app.log_text(), 60, "the appliance up")
            time.sleep(SETTLE_S)
            assert app.pid is not None
            a0, b0, t0 = proc_cpu_seconds(app.pid), proc_cpu_seconds(bare.pid), time.monotonic()
            time.sleep(SECONDS)
            a1, b1, t1 = proc_cpu_seconds(app.pid), proc_cpu_seconds(bare.pid), time.monotonic()
            names = threads(app.pid)
            app.stop()
    finally:
        bare.kill()
        bare.wait(5)
    wall = t1 - t0
    return {"seconds": wall, "ours_cpu_s": a1 - a0, "bare_cpu_s": b1 - b0,
            "ours_pct": 100 * (a1 - a0) / wall, "bare_pct": 100 * (b1 - b0) / wall,
            "threads": names}


def run() -> list[Row]:
    m = measure()
    return [Row("idle", "CPU out of a room, nothing recording/streaming/previewing",
                m["ours_pct"], "% of a core", m["bare_pct"],
                "python + aiortc + av, asyncio idle",
                notes=f"{m['seconds']:.0f} s; CPU clock ticks are 10 ms; "
                f"{len(m['threads'])} threads: {', '.join(sorted(set(m['threads'])))}",
                extra=m)]


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(), indent=2))

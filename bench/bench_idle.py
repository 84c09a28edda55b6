"""Idle CPU: the appliance out of a room, with nothing recording, streaming or previewing.

``edgeroom run --sim`` with ``room.auto_join = false`` is left alone for
:data:`SETTLE_S` s after it is up, then its CPU time (all threads, from ``/proc``) is
read over :data:`SECONDS` s. The reference is a bare Python that has imported aiortc and
PyAV and sleeps in an asyncio loop (the floor of any aiortc-based client), measured over
the same seconds. The threads alive at the end are in the JSON (by their OS names).

With ``EDGEROOM_BENCH_IDLE_BEFORE`` naming another source tree of the appliance, that tree
runs idle beside ours over the same seconds, as "before" (not set in ``make bench``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.bench_memory import appliance_from, rss_mb
from bench.env import BenchRoom, wait_until
from bench.proccpu import proc_cpu_seconds, wakeups_by_thread
from bench.report import Row
from tests.harness.appliance import REPO, ApplianceProcess
from tests.harness.lifetime import child_setup

log = logging.getLogger(__name__)

SECONDS = 30.0
SETTLE_S = 5.0
#: Another source tree run beside this one as "before" (see the module's doc).
BEFORE_TREE = os.environ.get("EDGEROOM_BENCH_IDLE_BEFORE", "")
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
                            text=True, preexec_fn=child_setup())
    try:
        assert bare.stdout is not None
        bare.stdout.readline()
        with BenchRoom("bd") as env:
            room = env.new_room()
            config = {"room": {"room": room, "auto_join": False}, "audio": {"backend": "sim"},
                      "video": {"backend": "sim"}}
            app = env.appliance("idle", config)
            before = appliance_from(env, "bidle", config, BEFORE_TREE) if BEFORE_TREE else None
            for one in (app, before):
                if one is not None:
                    wait_until(partial(_up, one), 60, "the appliance up")
            time.sleep(SETTLE_S)
            assert app.pid is not None
            pids = {"ours": app.pid, "bare": bare.pid,
                    **({"before": before.pid} if before and before.pid else {})}
            w0 = {k: sum(wakeups_by_thread(p).values()) for k, p in pids.items()}
            c0, t0 = {k: proc_cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
            time.sleep(SECONDS)
            c1, t1 = {k: proc_cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
            w1 = {k: sum(wakeups_by_thread(p).values()) for k, p in pids.items()}
            names = threads(app.pid)
            rss = {k: rss_mb(p)["VmRSS"] for k, p in pids.items()}
            for one in (app, before):
                if one is not None:
                    one.stop()
    finally:
        bare.kill()
        bare.wait(5)
    wall = t1 - t0
    out: dict[str, Any] = {"seconds": wall, "threads": names, "rss_mb": rss}
    for k in pids:
        out[f"{k}_cpu_s"] = c1[k] - c0[k]
        out[f"{k}_pct"] = 100 * (c1[k] - c0[k]) / wall
        out[f"{k}_wakeups_per_s"] = round((w1[k] - w0[k]) / wall, 1)
    return out


def _up(app: ApplianceProcess) -> bool:
    return " up (" in app.log_text()


def run() -> list[Row]:
    m = measure()
    return [Row("idle", "CPU out of a room, nothing recording/streaming/previewing",
                m["ours_pct"], "% of a core", m["bare_pct"],
                "python + aiortc + av, asyncio idle",
                notes=f"{m['seconds']:.0f} s; CPU clock ticks are 10 ms; "
                f"{len(m['threads'])} threads: {', '.join(sorted(set(m['threads'])))}"
                + f"; its threads woke {m['ours_wakeups_per_s']:.1f} times a second (the "
                f"bare interpreter {m['bare_wakeups_per_s']:.1f})"
                + (f"; before: {m['before_pct']:.2f} %, {m['before_wakeups_per_s']:.1f} "
                   f"wake-ups a second" if "before_pct" in m else ""),
                extra=m)]


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(), indent=2))

"""``make soak``: one appliance for SOAK_MINUTES (default 60) under a normal day's use.

The appliance (``edgeroom run --sim``) sits in a room on a real Janus inside private
network namespaces (:class:`bench.env.BenchRoom`) with one other member sending audio.
A browser-like client (:mod:`bench.soak_client`) keeps a page open: login, status every
3 s, the event stream, a leave and join every minute. Janus is restarted every 10
minutes (every minutes/3 in shorter runs), so the room session reconnects.

Every 10 s the appliance's RSS, open file descriptors and threads are read from
``/proc``. After a warm-up of min(10, minutes/3) minutes, from the samples taken in the
room (not during a leave/join or the 10 s after it), the report gives the RSS slope
(least squares, MB per hour), the fd and thread ranges and slopes, the client's counts
and every ERROR/CRITICAL line and traceback of the appliance's log. Goal: RSS slope
<= 5 MB/h, fd and thread counts flat, no client failure.

Audio (:mod:`bench.soak_audio`): the appliance's sim clocks run 100 ppm fast and the
member's 100 ppm slow for the whole run, and each side's playout delay must end within
10 ms of where it started; the first min(10, minutes) minutes have no leave/join and no
Janus restart, and must have no underrun. Written to bench/results/soak-<time>.json and
printed as a table. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import soak_audio
from bench.env import BenchRoom, wait_until
from bench.report import Row, table
from bench.soak_client import PageClient
from tests.harness.appliance import EDGEROOM, REPO
from tests.harness.netns import NsLoop

log = logging.getLogger(__name__)

SAMPLE_S = 10.0
GOAL_RSS_MB_PER_H = 5.0
_ERROR_LINE = re.compile(r"^(ERROR|CRITICAL) |^Traceback ")


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (MB), open fds and threads of ``pid``."""
    status: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "threads": float(status["Threads"]),
            "fds": float(len(os.listdir(f"/proc/{pid}/fd")))}


def slope_per_hour(samples: list[dict[str, float]], key: str) -> float | None:
    """Least-squares slope of ``key`` against time, per hour."""
    if len(samples) < 3:
        return None
    ts = [s["t"] / 3600.0 for s in samples]
    ys = [s[key] for s in samples]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var


def error_lines(log_text: str) -> list[str]:
    return [line for line in log_text.splitlines() if _ERROR_LINE.match(line)]


def _password(state_dir: Path) -> str:
    exe = [str(EDGEROOM)] if EDGEROOM.exists() else [sys.executable, "-m", "device"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*exe, "password", "reset", "--state-dir", str(state_dir)],
                          capture_output=True, text=True, env=env, timeout=60,
                          check=True).stdout.strip()


def _audio(page_loop: NsLoop, client: PageClient, peer: Any) -> dict[str, Any] | None:
    try:
        status = page_loop.run(client.status(), 30)
    except Exception as exc:  # counted by the client's own polls; the sample goes on
        log.warning("soak: status for the audio sample: %s", exc)
        status = None
    return soak_audio.sample(status, peer)


def soak(minutes: float) -> dict[str, Any]:
    warmup = min(10.0, minutes / 3) * 60
    janus_every = min(10.0, minutes / 3) * 60
    duration = minutes * 60
    clean_s = min(soak_audio.CLEAN_MINUTES * 60, duration)
    with BenchRoom("es") as env:
        room = env.new_room()
        peer = env.peer("member", room, tone="tone:330", mic_drift_ppm=-soak_audio.DRIFT_PPM,
                        speaker_drift_ppm=-soak_audio.DRIFT_PPM)
        peer.call(lambda s: s.join(), timeout=30)
        app = env.appliance("box", {
            "room": {"room": room, "display_name": "soak"},
            "video": {"width": 320, "height": 240, "fps": 15},
            "web": {"listen": "127.0.0.1:8080"},
            "sim": soak_audio.appliance_sim_config()}, start=False)
        password = _password(app.state_dir)
        app.start()
        wait_until(lambda: "-> in_room" in app.log_text(), 60, "the appliance in the room")
        assert app.pid is not None
        pid = app.pid
        client = PageClient("http://127.0.0.1:8080", password, quiet_s=clean_s)
        page_loop = NsLoop(app.host)
        running = page_loop.submit(client.run())
        started = time.monotonic()
        samples: list[dict[str, float]] = []
        janus_restarts = 0
        next_restart = started + clean_s + janus_every
        try:
            while (now := time.monotonic()) - started < duration:
                if not app.alive():
                    raise RuntimeError(f"the appliance exited: {app.log_text()[-2000:]}")
                if running.done():
                    running.result()  # the client died: raise its error
                samples.append({"t": now - started, "changing_room": client.changing_room,
                                **proc_sample(pid), "audio": _audio(page_loop, client, peer)})
                if now >= next_restart and duration - (now - started) > 60:
                    log.warning("soak: restarting janus")
                    env.janus.stop()
                    env.janus.start()
                    janus_restarts += 1
                    next_restart += janus_every
                time.sleep(min(SAMPLE_S, max(0.0, duration - (time.monotonic() - started))))
            samples.append({"t": time.monotonic() - started,
                            "changing_room": client.changing_room, **proc_sample(pid)})
            # Nothing lost: the box ends in the room (a leave/join may be under way).
            deadline = time.monotonic() + 60
            while True:
                final = page_loop.run(client.status(), 30)
                if final.get("state") == "in_room" or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
        finally:
            running.cancel()
            page_loop.close()
        log_text = app.log_text()
    # In the room, not in the middle of a leave/join: the state that must not grow.
    steady = [s for s in samples if s["t"] >= warmup and not s["changing_room"]]
    result: dict[str, Any] = {
        "minutes": minutes, "warmup_minutes": warmup / 60, "janus_every_minutes":
        janus_every / 60, "janus_restarts": janus_restarts, "samples": samples,
        "rss_mb_start": steady[0]["rss_mb"] if steady else None,
        "rss_mb_end": steady[-1]["rss_mb"] if steady else None,
        "rss_slope_mb_per_h": slope_per_hour(steady, "rss_mb"),
        "fds": [min(s["fds"] for s in steady), max(s["fds"] for s in steady)],
        "fds_slope_per_h": slope_per_hour(steady, "fds"),
        "threads": [min(s["threads"] for s in steady), max(s["threads"] for s in steady)],
        "threads_slope_per_h": slope_per_hour(steady, "threads"),
        "client": client.counts.to_dict(), "error_lines": error_lines(log_text),
        "state_at_end": final.get("state"),
        "clean_leg": soak_audio.clean_leg(samples, clean_s),
        "drift": soak_audio.drift(samples),
    }
    return result


def rows(result: dict[str, Any]) -> list[Row]:
    c = result["client"]
    return [
        Row("soak", "RSS slope after warm-up", result["rss_slope_mb_per_h"], "MB/h",
            GOAL_RSS_MB_PER_H, "goal", notes=f"{result['rss_mb_start']:.0f} -> "
            f"{result['rss_mb_end']:.0f} MB over {result['minutes'] - result['warmup_minutes']:.1f}"
            " min"),
        Row("soak", "open fds (min..max)", result["fds"][1], "fds", result["fds"][0], "min",
            notes=f"slope {result['fds_slope_per_h'] or 0:.1f}/h"),
        Row("soak", "threads (min..max)", result["threads"][1], "threads",
            result["threads"][0], "min",
            notes=f"slope {result['threads_slope_per_h'] or 0:.1f}/h"),
        Row("soak", "janus restarts", result["janus_restarts"], "", notes=(
            f"state at the end: {result['state_at_end']}")),
        Row("soak", "page requests / failures", c["requests"], "",
            float(sum(c["failures"].values())), "failures",
            notes=f"{c['polls']} polls, {c['events']} events, {c['joins']} joins"),
        Row("soak", "error log lines", float(len(result["error_lines"])), "lines"),
        *soak_audio.rows(result),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float,
                        default=float(os.environ.get("SOAK_MINUTES", "60")))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("services", "device", "drivers", "aiortc", "aioice", "tests.harness"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print(f"soak: {args.minutes:g} min", flush=True)
    result = soak(args.minutes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"result": result,
                                "rows": [r.to_dict() for r in rows(result)]}, indent=2))
    print(table(rows(result)))
    for line in result["error_lines"]:
        print(f"  log: {line}")
    if result["client"]["last_failure"]:
        print(f"  last client failure: {result['client']['last_failure']}")
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

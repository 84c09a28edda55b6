"""Memory: RSS of the appliance process idle, and in a 4-member video room.

Idle: ``edgeroom run --sim`` not joining any room (``room.auto_join = false``), against
a bare Python that has imported aiortc and PyAV (the floor of any aiortc-based client).

Room: three other appliances publish audio and 320x240@15 video into the room; ours
publishes 640x480@30 and subscribes to all of them (``video.receive = true``). With no
screen (the bench box has none) nothing shows their video, so it is not decoded; a second
row runs ours with the sim screen (``display.backend = "sim"``) showing all three, each
decoded. The same room is measured again on Janus's default video codec, VP8 (libvpx
encodes ours; no screen), with three members of its own. The reference is a plain aiortc
member (:mod:`bench.plain_aiortc`: aiortc's own peer connections and Janus signalling of
its own, none of the appliance's room code) that publishes the same sim mic and camera
and decodes every stream, in the same room, measured after ours has left. RSS is read
from ``/proc`` after :data:`SETTLE_S` s in the room (``VmRSS``; the peak ``VmHWM`` is in
the JSON). Ours runs with the environment of its systemd unit (``MALLOC_ARENA_MAX``), as
on the device; the plain member without.

With ``EDGEROOM_BENCH_MEMORY_BEFORE`` naming another source tree of the appliance (an
export of an earlier commit), that tree is measured too, idle and in the same room, as
"before" (not set in ``make bench``).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench import plain_aiortc
from bench.bench_quota import TreeAppliance
from bench.env import BenchRoom, wait_until
from bench.report import Row
from tests.harness.appliance import REPO, ApplianceProcess
from tests.harness.lifetime import child_setup

log = logging.getLogger(__name__)

SETTLE_S = 20.0
IDLE_S = 6.0
#: The room rows: result key and ``display.backend`` (off: nothing shows the members).
ROOM_RUNS = (("room", "off"), ("room_screen", "sim"))
#: The same room on Janus's default video codec, VP8: no screen.
VP8_ROOM_RUNS = (("room", "off"),)
#: Another source tree measured beside this one as "before" (see the module's doc).
BEFORE_TREE = os.environ.get("EDGEROOM_BENCH_MEMORY_BEFORE", "")
SENDING = re.compile(r"room: sending (\S+) video")
GIVEN_BACK = re.compile(r"([\d.]+) MB of libvpx's zeroed token buffer given back")


def rss_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def _bare_python() -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c",
                             "import aiortc, av, sys; print('ok', flush=True); "
                             "sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
                            preexec_fn=child_setup())
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    got = rss_mb(proc.pid)
    proc.stdin.close()
    proc.wait(10)
    return got


def _in_room(log_text: str) -> bool:
    return "-> in_room" in log_text


def _in_room_app(app: ApplianceProcess) -> bool:
    return _in_room(app.log_text())


def appliance_from(env: BenchRoom, name: str, config: dict[str, Any],
               tree: str = "") -> ApplianceProcess:
    """``env.appliance`` from this tree, or from ``tree`` when given."""
    if not tree:
        return env.appliance(name, config)
    host = env.host(name)
    config = {**config, "room": {"server": env.janus.url, **config.get("room", {})}}
    config.setdefault("web", {}).setdefault("listen", "127.0.0.1:8080")
    app = TreeAppliance(Path(tree), host, env.workdir / host.name, config)
    env.appliances.append(app)
    app.start()
    return app


def measure() -> dict[str, Any]:
    result: dict[str, Any] = {"bare_python_aiortc": _bare_python()}
    trees = {"": "", **({"before_": BEFORE_TREE} if BEFORE_TREE else {})}
    with BenchRoom("bm") as env:
        room = env.new_room()
        for prefix, tree in trees.items():
            idle = appliance_from(env, f"{prefix}idle", {
                "room": {"room": room, "auto_join": False}, "audio": {"backend": "sim"},
                "video": {"backend": "sim"}}, tree)
            time.sleep(IDLE_S)
            assert idle.pid is not None
            result[f"{prefix}idle"] = rss_mb(idle.pid)
            idle.stop()
        result.update(_measure_room(env, room, trees, ROOM_RUNS, ""))
        result.update(_measure_room(env, env.new_vp8_room(), trees, VP8_ROOM_RUNS, "vp8_"))
    return result


def _measure_room(env: BenchRoom, room: int, trees: dict[str, str],
                  runs: tuple[tuple[str, str], ...], codec: str) -> dict[str, Any]:
    """Ours (each tree, each of ``runs``) and then the plain aiortc member in ``room``
    with three other members; keys start with ``codec`` ("" for the H.264 room)."""
    result: dict[str, Any] = {}
    fillers = [env.appliance(f"{codec}f{i}", {
        "room": {"room": room, "display_name": f"filler{i}"},
        "audio": {"backend": "sim"},
        "video": {"backend": "sim", "width": 320, "height": 240, "fps": 15,
                  "receive": False}}) for i in range(3)]
    for f in fillers:
        wait_until(partial(_in_room_app, f), 60, f"{f.host.name} in the room")
    for (prefix, tree), (key, display) in itertools.product(trees.items(), runs):
        ours = appliance_from(env, f"{prefix}{codec}ours", {
            "room": {"room": room, "display_name": f"{prefix}ours"},
            "audio": {"backend": "sim"}, "video": {"backend": "sim", "receive": True},
            "display": {"backend": display}}, tree)
        wait_until(partial(_in_room_app, ours), 60, f"{prefix}ours in the room")
        time.sleep(SETTLE_S)
        assert ours.pid is not None
        result[f"{prefix}{codec}{key}"] = {
            **rss_mb(ours.pid), "video_codec": _sent_codec(ours),
            "zeroed_mb_given_back": sum(map(float, GIVEN_BACK.findall(ours.log_text())))}
        ours.stop()
    host = env.host(f"{codec}aio")
    client = plain_aiortc.launch(host, env.janus.url, room, SETTLE_S + 5)
    try:
        assert client.stdout is not None
        plain_aiortc.wait_joined(client)
        time.sleep(SETTLE_S)
        result[f"aiortc_{codec}room"] = rss_mb(client.pid)
        result[f"aiortc_{codec}tail"] = client.stdout.read()
        client.wait(30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(5)
    for f in fillers:
        f.stop()
    return result


def _sent_codec(app: ApplianceProcess) -> str:
    """The video codec the box sends the room, from its log ("room: sending vp8 video")."""
    found = SENDING.findall(app.log_text())
    return found[-1] if found else "?"


def _decoded(tail: object) -> str:
    counts = [line for line in str(tail).splitlines()
              if line.startswith("video frames received:")]
    return counts[-1].replace("video frames received:", "decoded") if counts else "?"


def run() -> list[Row]:
    m = measure()
    before = {k: f"; before: {m[f'before_{k}']['VmRSS']:.1f} MB" if f"before_{k}" in m else ""
              for k in ("idle", "room", "room_screen", "vp8_room")}
    return [
        Row("memory", "RSS idle (not in a room)", m["idle"]["VmRSS"], "MB",
            m["bare_python_aiortc"]["VmRSS"], "python + aiortc + av imported", extra=m,
            notes=f"goal 80 MB{before['idle']}"),
        Row("memory", "RSS in a 4-member video room", m["room"]["VmRSS"], "MB",
            m["aiortc_room"]["VmRSS"], "plain aiortc member",
            notes=f"goal 100 MB; sending {m['room']['video_codec']} 640x480@30 A+V, "
            "receiving 3 members' A+V, no screen: their video is not decoded; plain member "
            f"{_decoded(m['aiortc_tail'])} frames in {SETTLE_S + 5:.0f} s{before['room']}"),
        Row("memory", "RSS in the room, the sim screen showing the members",
            m["room_screen"]["VmRSS"], "MB", m["aiortc_room"]["VmRSS"], "plain aiortc member",
            notes="as above, ours decoding and drawing all 3 members' video"
            f"{before['room_screen']}"),
        Row("memory", "RSS in a 4-member VP8 room (Janus's default codec)",
            m["vp8_room"]["VmRSS"], "MB", m["aiortc_vp8_room"]["VmRSS"],
            "plain aiortc member, same room",
            notes=f"goal 100 MB; sending {m['vp8_room']['video_codec']} 640x480@30 A+V "
            f"(libvpx; {m['vp8_room']['zeroed_mb_given_back']:.1f} MB of its zeroed token "
            "buffer given back), no screen; plain member "
            f"{_decoded(m['aiortc_vp8_tail'])} frames in {SETTLE_S + 5:.0f} s"
            f"{before['vp8_room']}"),
    ]


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(), indent=2))

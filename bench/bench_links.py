"""Links: what forwarding one publisher to another Janus costs both servers.

Two Janus servers, each in its own namespace. Camera-and-tone publishers join a room on
server 1; one box on server 2 receives. For 1 and then 3 publishers, the same window is
measured twice: without the link and with it. The link's cost per remote publisher is
the difference (CPU of each Janus process, bytes on its network interface), divided by
the publishers forwarded. The reference is what the same publishers cost server 1 to
take in over WebRTC (its receive bandwidth and CPU in the window without the link): a
forward should weigh about one more copy of the stream.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from typing import Any

from bench.env import BenchRoom, wait_until
from bench.report import Row
from services.room.context import RoomSettings
from services.room.links.manager import LinkManager
from services.room.links.settings import LinkSettings, RoomEnd
from tests.harness.janus import JanusServer
from tests.harness.netns import Host, NsLoop
from tests.harness.peers import RoomPeer

log = logging.getLogger(__name__)

WINDOW_S = 10.0
SETTLE_S = 4.0
SECRET = "benchsecret"
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _bytes(host: Host) -> tuple[int, int]:
    """(received, sent) bytes on the host's eth0."""
    out = subprocess.run([*host.exec_prefix(), "cat", "/proc/net/dev"], capture_output=True,
                         text=True, timeout=5, check=True).stdout
    for line in out.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "eth0":
            values = rest.split()
            return int(values[0]), int(values[8])
    raise RuntimeError(f"no eth0 in {host.ns}")


def _window(servers: list[JanusServer]) -> list[dict[str, float]]:
    """CPU % and receive/send kbit/s of each server over WINDOW_S."""
    pids = [s.proc.pid for s in servers if s.proc is not None]
    cpu0 = [_cpu_s(p) for p in pids]
    net0 = [_bytes(s.host) for s in servers]
    t0 = time.monotonic()
    time.sleep(WINDOW_S)
    dt = time.monotonic() - t0
    out = []
    for pid, c0, (rx0, tx0), s in zip(pids, cpu0, net0, servers, strict=True):
        rx1, tx1 = _bytes(s.host)
        out.append({"cpu_pct": (_cpu_s(pid) - c0) / dt * 100,
                    "rx_kbps": (rx1 - rx0) * 8 / dt / 1000,
                    "tx_kbps": (tx1 - tx0) * 8 / dt / 1000})
    return out


def measure(counts: tuple[int, ...] = (1, 3)) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with BenchRoom("bl") as env:
        j1 = env.janus
        j2 = JanusServer(env.network.add_host("janus2"), env.workdir / "janus2",
                         j1.settings.rooms)
        j2.start()
        ctl = NsLoop(env.network.add_host("ctl"))
        try:
            for n in counts:
                room = env.new_room()
                pubs = [env.peer(f"p{i}", room, tone=f"tone:{400 + 100 * i}", camera=True)
                        for i in range(n)]
                host = env.host("rx")
                (env.workdir / host.name).mkdir(exist_ok=True)
                rx = RoomPeer(host, env.workdir / host.name,
                              RoomSettings(url=j2.url, room=room, display="rx"), tone=None)
                env.peers.append(rx)
                for p in [*pubs, rx]:
                    p.call(lambda s: s.join())
                time.sleep(SETTLE_S)
                without = _window([j1, j2])
                manager: LinkManager = ctl.run(_manager())
                settings = LinkSettings(f"bench{n}", RoomEnd(j1.url, room, SECRET),
                                        RoomEnd(j2.url, room, SECRET), direction="send")
                ctl.run(_add(manager, settings))
                wait_until(lambda n=n, rx=rx: len(rx.session.members()) == n
                           and all(m.has_video for m in rx.session.members()), 30,
                           "the forwarded publishers at server 2")
                time.sleep(SETTLE_S)
                with_link = _window([j1, j2])
                ctl.run(manager.close(), 30)
                results[str(n)] = {"without": without, "with": with_link}
                for p in [*pubs, rx]:
                    env.drop_peer(p)
        finally:
            ctl.close()
            j2.stop()
    return results


async def _manager() -> LinkManager:
    return LinkManager(lambda name, data: None)


async def _add(manager: LinkManager, settings: LinkSettings) -> None:
    manager.add(settings)


def run() -> list[Row]:
    m = measure()
    load = os.getloadavg()[0]  # what else the machine was doing, as the run ended
    rows = []
    for n, r in m.items():
        k = int(n)
        (s0, d0), (s1, d1) = r["without"], r["with"]
        ingest_kbps = s0["rx_kbps"] / k
        ingest_cpu = s0["cpu_pct"] / k
        notes = (f"{k} publisher(s), {WINDOW_S:.0f} s windows; load average "
                 f"{load:.1f} at the end")
        rows += [
            Row("links", f"sending Janus: forward kbit/s per remote publisher ({k})",
                (s1["tx_kbps"] - s0["tx_kbps"]) / k, "kbit/s", ingest_kbps,
                "its WebRTC ingest per publisher", notes=notes, extra=r),
            Row("links", f"receiving Janus: kbit/s in per remote publisher ({k})",
                (d1["rx_kbps"] - d0["rx_kbps"]) / k, "kbit/s", ingest_kbps,
                "sending Janus's WebRTC ingest per publisher", notes=notes),
            Row("links", f"sending Janus: CPU % per remote publisher ({k})",
                (s1["cpu_pct"] - s0["cpu_pct"]) / k, "%", ingest_cpu,
                "its CPU per local publisher, no link", notes=notes),
            Row("links", f"receiving Janus: CPU % per remote publisher ({k})",
                (d1["cpu_pct"] - d0["cpu_pct"]) / k, "%", ingest_cpu,
                "sending Janus's CPU per local publisher, no link",
                notes="includes serving the one subscriber on server 2"),
        ]
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(measure((1,)), indent=2))

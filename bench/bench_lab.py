"""How faithful the impairment lab is while it carries a real call.

Box A sits behind the lab (:mod:`tests.harness.impaired`), boxes B and C on the plain
bridge; all three send audio and camera video through Janus, so A's link carries three
streams of each (about 1.2 Mbit/s). With 20 ms of delay set each way, pings from A
to Janus must take 40 ms plus what the same ping takes on a plain veth link (measured in
the same run from B, the reference); anything above that is jitter the forwarder added.
The forwarder also reports how late it wrote each packet against its due time.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from bench.env import BenchRoom, percentile, wait_until
from bench.report import Row
from tests.harness.impair import CLEAN, Impairment
from tests.harness.impaired import ping

log = logging.getLogger(__name__)

DELAY_MS = 20.0
PINGS = 300


def _late_p99_ms(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """The 99th percentile of the forwarder's lateness, as the bucket bound holding it."""
    counts = [b - a for a, b in zip(before["counts"], after["counts"], strict=True)]
    total = sum(counts)
    if not total:
        return None
    bounds = [*after["buckets"], after["max"]]
    running = 0
    for count, bound in zip(counts, bounds, strict=True):
        running += count
        if running >= 0.99 * total:
            return float(bound) / 1000.0
    return float(after["max"]) / 1000.0


def measure(pings: int = PINGS) -> dict[str, Any]:
    with BenchRoom("el") as env:
        room = env.new_room()
        # A has no screen, so it must be told to subscribe to B's and C's video: the
        # lab is measured while it carries the whole call.
        a = env.peer("a", room, tone="tone:440", camera=True, up=CLEAN, down=CLEAN,
                     receive_video=True)
        b = env.peer("b", room, tone="tone:880", camera=True)
        c = env.peer("c", room, tone="tone:660", camera=True)
        link = env.link(a.host)
        a.call(lambda s: s.join())
        b.call(lambda s: s.join())
        c.call(lambda s: s.join())
        wait_until(lambda: any(len(d.get("members", {})) == 2 and d["down"]["bitrate_kbps"] > 400
                               for d in a.names("stats")), 30, "video from B and C at A")
        link.set(up=Impairment(delay_ms=DELAY_MS), down=Impairment(delay_ms=DELAY_MS))
        time.sleep(1.0)
        before = link.stats()
        start = time.monotonic()
        through = ping(a.host.ns, env.janus_host.ip, pings, interval=0.02)
        elapsed = time.monotonic() - start
        after = link.stats()
        plain = ping(b.host.ns, env.janus_host.ip, pings, interval=0.02)
    carried = sum(after[d]["bytes"] - before[d]["bytes"] for d in ("up", "down"))
    return {"rtt_ms": sorted(through.rtts.values()), "plain_ms": sorted(plain.rtts.values()),
            "lost": len(through.lost), "late_p99_ms": _late_p99_ms(before["late_us"],
                                                                   after["late_us"]),
            "late_max_ms": after["late_us"]["max"] / 1000.0,
            "carried_kbps": carried * 8 / elapsed / 1000.0, "realtime": after["realtime"]}


def run() -> list[Row]:
    m = measure()
    rtt, plain = m["rtt_ms"], m["plain_ms"]
    expected = 2 * DELAY_MS
    notes = (f"{DELAY_MS:.0f}+{DELAY_MS:.0f} ms set, carrying {m['carried_kbps']:.0f} kbit/s, "
             f"lost {m['lost']}")
    rows = []
    for label, q in (("p50", 50), ("p95", 95)):
        ours, ref = percentile(rtt, q), percentile(plain, q)
        rows.append(Row("lab", f"ping RTT through the lab {label}", ours, "ms",
                        None if ref is None else ref + expected, "set delay + plain veth",
                        notes=notes if q == 50 else "",
                        extra={"rtt_ms": rtt, "plain_ms": plain} if q == 50 else {}))
    rows.append(Row("lab", "forwarder lateness p99", m["late_p99_ms"], "ms",
                    notes=f"max {m['late_max_ms']:.2f} ms, real-time priority "
                          f"{'on' if m['realtime'] else 'off'}"))
    rows.append(Row("lab", "ping RTT spread through the lab (stdev)",
                    statistics.pstdev(rtt) if rtt else None, "ms",
                    statistics.pstdev(plain) if plain else None, "plain veth"))
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in measure(100).items() if not k.endswith("_ms")
                      or not isinstance(v, list)}, indent=2))

"""The forwarder process of an impaired link: moves IP packets between two TUN devices.

``python -m tests.harness.impair_fwd HOST_NS:DEV HUB_NS:DEV '{"up": {...}, "down": {...}}'``

It opens ``/dev/net/tun`` once in each namespace (it moves itself into one, then the
other: a TUN file stays bound to the namespace it was attached in), then runs a single
loop: ``select`` on both devices and on its control pipe, with a timeout up to the next
departure. Each packet read is given its departure time by the direction's
:class:`~tests.harness.impair.Direction` and goes into one heap; whatever is due is
written to the other device. No thread and no per-packet timer, so the only jitter it
adds is its own wake-up latency, which it measures (``late_us`` in its stats: how long
after its due time each packet was written). It asks for a real-time priority so that a
busy machine delays it as little as possible.

Control, one JSON object per line on stdin, one reply per line on stdout:
``{"op": "set", "up": {...}, "down": {...}}`` (either may be omitted),
``{"op": "outage", "seconds": S, "up": true, "down": true}``, ``{"op": "stats"}``.
It exits when stdin closes (the test process is gone).
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import json
import os
import select
import struct
import sys
import time
from typing import Any

from tests.harness.impair import Direction, Impairment
from tests.harness.netns import setns

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
#: Bounds (microseconds) of the lateness histogram in the stats.
LATE_BUCKETS_US = (250, 500, 1000, 2000, 5000, 10000)


def open_tun(ns: str, dev: str) -> int:
    """Attach to the (persistent) TUN device ``dev`` of namespace ``ns``."""
    setns(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", dev.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise OSError(exc.errno, f"attaching to TUN {dev} in {ns}: {exc.strerror}") from exc
    return fd


def _realtime() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return True
    except (OSError, AttributeError):
        return False


class Forwarder:
    def __init__(self, host_fd: int, hub_fd: int, up: Impairment, down: Impairment) -> None:
        now = time.monotonic()
        self.up = Direction(up, now)  # host -> hub
        self.down = Direction(down, now)  # hub -> host
        # fd read from -> (its direction, fd written to)
        self.routes = {host_fd: (self.up, hub_fd), hub_fd: (self.down, host_fd)}
        self.heap: list[tuple[float, int, int, bytes]] = []
        self._order = itertools.count()
        self.write_errors = 0
        self.late_hist = [0] * (len(LATE_BUCKETS_US) + 1)
        self.late_max_us = 0
        self.realtime = _realtime()

    def _send_due(self) -> None:
        heap = self.heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            due, _, fd, packet = heapq.heappop(heap)
            try:
                os.write(fd, packet)
            except OSError:
                self.write_errors += 1  # device down or full: the packet is lost
            late = int((now - due) * 1e6)
            self.late_max_us = max(self.late_max_us, late)
            self.late_hist[next((i for i, b in enumerate(LATE_BUCKETS_US) if late < b),
                                len(LATE_BUCKETS_US))] += 1
            now = time.monotonic()

    def _read(self, fd: int) -> None:
        direction, out = self.routes[fd]
        for _ in range(256):
            try:
                packet = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return  # the other end is being torn down
            due = direction.departure(len(packet), time.monotonic())
            if due is not None:
                heapq.heappush(self.heap, (due, next(self._order), out, packet))

    def stats(self) -> dict[str, Any]:
        return {"up": dict(self.up.counters), "down": dict(self.down.counters),
                "queued": len(self.heap), "write_errors": self.write_errors,
                "late_us": {"max": self.late_max_us,
                            "buckets": list(LATE_BUCKETS_US), "counts": self.late_hist},
                "realtime": self.realtime}

    def command(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        now = time.monotonic()
        if op == "set":
            for name in ("up", "down"):
                if msg.get(name) is not None:
                    getattr(self, name).set(Impairment.from_dict(msg[name]), now)
        elif op == "outage":
            seconds = float(msg["seconds"])
            for name in ("up", "down"):
                if msg.get(name, True):
                    getattr(self, name).start_outage(now, seconds)
        elif op != "stats":
            raise ValueError(f"unknown op {op!r}")
        return {"ok": True, "stats": self.stats()}

    def run(self, control: int) -> None:
        fds = [control, *self.routes]
        pending = b""
        while True:
            self._send_due()
            timeout = max(0.0, self.heap[0][0] - time.monotonic()) if self.heap else None
            ready, _, _ = select.select(fds, [], [], timeout)
            for fd in ready:
                if fd != control:
                    self._read(fd)
                    continue
                chunk = os.read(control, 65536)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    try:
                        reply = self.command(json.loads(line))
                    except (ValueError, KeyError, TypeError) as exc:
                        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                    sys.stdout.write(json.dumps(reply) + "\n")
                    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write(__doc__ or "")
        return 2
    (host_ns, host_dev), (hub_ns, hub_dev) = (a.rsplit(":", 1) for a in argv[:2])
    config = json.loads(argv[2])
    host_fd = open_tun(host_ns, host_dev)
    hub_fd = open_tun(hub_ns, hub_dev)
    fwd = Forwarder(host_fd, hub_fd, Impairment.from_dict(config.get("up", {})),
                    Impairment.from_dict(config.get("down", {})))
    sys.stdout.write(json.dumps({"ok": True, "ready": True, "stats": fwd.stats()}) + "\n")
    sys.stdout.flush()
    fwd.run(sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

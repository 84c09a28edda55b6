"""The impairment lab: a host whose link to the test network goes through a userspace
network emulator (``tc netem`` is not available on these machines).

An impaired host's namespace has no veth pair: its ``eth0`` is a TUN device, and the
hub namespace has another one (``t<n>``). A forwarder process
(:mod:`tests.harness.impair_fwd`) reads each IP packet from one and writes it to the
other, applying an :class:`~tests.harness.impair.Impairment` per direction: ``up`` (from
the host) and ``down`` (to the host). The hub routes between its TUN devices and the
bridge: it has an address on the bridge, forwards IPv4, and answers ARP on the bridge for
the impaired hosts (proxy ARP), so every other host on the bridge (Janus, other boxes)
reaches an impaired host at its usual address, and sees no difference but the impairment.

Use::

    host = network.add_impaired_host("a", up=Impairment(delay_ms=20, loss=0.05),
                                     down=Impairment(delay_ms=20, jitter_ms=10))
    link = network.links[host.name]
    link.set(up=Impairment.bursty(0.03, mean_burst=3))  # at run time
    link.outage(2.0)  # both directions drop everything for 2 s, from now
    link.stats()  # per-direction counters, and the forwarder's own lateness

A ping's round trip crosses both directions, so it rises by ``up.delay_ms +
down.delay_ms``; that is how the lab's tests check it (tests/room/test_impairment_lab.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.impair import CLEAN, Impairment
from tests.harness.lifetime import child_setup

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]

#: Runs ``ip ARGS`` (in namespace ``ns`` when given), raising on failure.
IpCommand = Callable[..., None]


def _run(*cmd: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")


def sysctl(ns: str, *settings: str) -> None:
    """Set ``key=value`` sysctls inside namespace ``ns``."""
    _run("ip", "netns", "exec", ns, "sysctl", "-qw", *settings)


class ImpairedLink:
    """The forwarder between ``host_ns:host_dev`` and ``hub_ns:hub_dev`` (both TUN)."""

    def __init__(self, host_ns: str, host_dev: str, hub_ns: str, hub_dev: str,
                 up: Impairment = CLEAN, down: Impairment = CLEAN,
                 timeout: float = 10.0) -> None:
        self.up = up
        self.down = down
        self._lock = threading.Lock()
        self._timeout = timeout
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        config = json.dumps({"up": up.to_dict(), "down": down.to_dict()})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.impair_fwd", f"{host_ns}:{host_dev}",
             f"{hub_ns}:{hub_dev}", config],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=REPO, env=env, preexec_fn=child_setup())
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            self.started = self._reply()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<ImpairedLink pid={self.proc.pid} up={self.up} down={self.down}>"

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if not self._selector.select(self._timeout):
            raise RuntimeError(f"impairment forwarder: no answer in {self._timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"impairment forwarder exited ({self.proc.poll()}): {err}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"impairment forwarder: {reply.get('error')}")
        return reply

    def _command(self, **msg: Any) -> dict[str, Any]:
        with self._lock:
            if self.proc.poll() is not None or self.proc.stdin is None:
                raise RuntimeError("impairment forwarder is not running")
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
            stats: dict[str, Any] = self._reply()["stats"]
            return stats

    def set(self, up: Impairment | None = None, down: Impairment | None = None) -> None:
        """Change either direction; packets arriving from now on get the new impairment."""
        self._command(op="set", up=up.to_dict() if up else None,
                      down=down.to_dict() if down else None)
        self.up = up or self.up
        self.down = down or self.down

    def outage(self, seconds: float, up: bool = True, down: bool = True) -> None:
        """Drop every packet (in the chosen directions) for ``seconds`` from now."""
        if seconds <= 0:
            raise ValueError("outage length must be > 0 s")
        self._command(op="outage", seconds=seconds, up=up, down=down)

    def stats(self) -> dict[str, Any]:
        """``{"up": counters, "down": counters, "late_us": {...}, ...}``.

        Counters per direction: ``in``, ``out``, ``bytes`` (forwarded) and drops by
        reason (``outage``, ``loss``, ``burst``, ``queue``). ``late_us``: how late the
        forwarder wrote packets relative to their due time (its own added jitter).
        """
        return self._command(op="stats")

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # the forwarder exits on EOF
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._selector.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def make_impaired_link(ip: IpCommand, hub: str, ns: str, index: int, host_ip: str, prefix_len: int,
                       up: Impairment, down: Impairment) -> ImpairedLink:
    """Create the TUN pair for host ``ns`` (``eth0``) and hub (``t<index>``), start the
    forwarder. ``ip`` runs ``ip`` commands (``ip(*args, ns=...)``)."""
    hub_dev = f"t{index}"
    ip("tuntap", "add", "dev", "eth0", "mode", "tun", ns=ns)
    ip("tuntap", "add", "dev", hub_dev, "mode", "tun", ns=hub)
    # No IPv6 on the TUN devices: nothing but the traffic the test makes goes through.
    sysctl(ns, "net.ipv6.conf.eth0.disable_ipv6=1")
    sysctl(hub, f"net.ipv6.conf.{hub_dev}.disable_ipv6=1", f"net.ipv4.conf.{hub_dev}.rp_filter=0")
    ip("addr", "add", f"{host_ip}/{prefix_len}", "dev", "eth0", ns=ns)
    ip("link", "set", "eth0", "up", ns=ns)
    ip("link", "set", hub_dev, "up", ns=hub)
    ip("route", "add", f"{host_ip}/32", "dev", hub_dev, ns=hub)
    return ImpairedLink(ns, "eth0", hub, hub_dev, up, down)


def enable_hub_routing(ip: IpCommand, hub: str, hub_ip: str, prefix_len: int) -> None:
    """Let the hub route between its bridge and the impaired hosts' TUN devices."""
    ip("addr", "add", f"{hub_ip}/{prefix_len}", "dev", "br0", ns=hub)
    sysctl(hub, "net.ipv4.ip_forward=1", "net.ipv4.conf.br0.proxy_arp=1",
           "net.ipv4.neigh.br0.proxy_delay=0", "net.ipv4.conf.all.rp_filter=0",
           "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.br0.rp_filter=0",
           "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.br0.send_redirects=0")


class PingResult:
    """What ``ping`` saw: round-trip times by sequence number, and reply times."""

    def __init__(self, sent: int, rtts: dict[int, float], times: dict[int, float]) -> None:
        self.sent = sent
        self.rtts = rtts  # seq -> RTT in ms
        self.times = times  # seq -> when the reply came (wall clock, s)

    @property
    def lost(self) -> list[int]:
        return [seq for seq in range(1, self.sent + 1) if seq not in self.rtts]

    def runs(self) -> list[list[int]]:
        """The lost sequence numbers, in runs of consecutive ones."""
        runs: list[list[int]] = []
        for seq in self.lost:
            if runs and runs[-1][-1] == seq - 1:
                runs[-1].append(seq)
            else:
                runs.append([seq])
        return runs

    def __repr__(self) -> str:
        values = sorted(self.rtts.values())
        mid = values[len(values) // 2] if values else None
        return (f"<PingResult sent={self.sent} lost={len(self.lost)} min="
                f"{values[0] if values else None} median={mid}>")


def ping(ns: str, dest: str, count: int, interval: float = 0.02,
         size: int = 56, wait_s: float = 2.0) -> PingResult:
    """``count`` pings from namespace ``ns`` to ``dest``, ``interval`` s apart."""
    cmd = ["ip", "netns", "exec", ns, "ping", "-n", "-D", "-c", str(count), "-i",
           str(interval), "-s", str(size), "-W", str(wait_s), dest]
    timeout = count * interval * 3 + wait_s + 10
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode not in (0, 1):  # 1: some replies missing
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    rtts: dict[int, float] = {}
    times: dict[int, float] = {}
    for m in re.finditer(r"^\[([\d.]+)\].*icmp_seq=(\d+) .*time=([\d.]+) ms", out.stdout,
                         re.MULTILINE):
        seq = int(m.group(2))
        if seq not in rtts:  # a duplicate reply counts once
            rtts[seq] = float(m.group(3))
            times[seq] = float(m.group(1))
    return PingResult(count, rtts, times)

"""Private network namespaces joined by veth pairs, for tests that move real media.

Janus and aioice both skip loopback, so every host that exchanges media lives in its own
namespace. :class:`Network` creates a hub namespace holding a bridge and one namespace per
host, each joined to the bridge by a veth pair, all on a private /24 that exists only
inside these namespaces: no traffic can leave them. Names carry the pid and a counter,
so concurrent test runs never collide. :meth:`Network.close` deletes everything (also
after a failure); deleting a namespace kills the veth pairs with it.

:meth:`Network.add_impaired_host` adds a host whose link goes through the impairment lab
(delay, jitter, loss, bursts, a bandwidth cap, outages; see :mod:`tests.harness.impaired`).
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tests.harness.impair import Impairment
    from tests.harness.impaired import ImpairedLink

log = logging.getLogger(__name__)

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_counter = itertools.count(1)


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(("-n", ns) if ns else ()), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")


def setns(name: str) -> None:
    """Move the calling thread into network namespace ``name`` (threads it starts follow)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def cleanup_stale(tag: str = "er") -> None:
    """Delete namespaces (and kill what runs in them) left by a test run that died."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             timeout=10).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = re.match(rf"^{re.escape(tag)}(\d+)-\d+-", name)
        if match is None or _alive(int(match.group(1))):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                              timeout=10).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        log.warning("deleting stale namespace %s", name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Host:
    name: str  # short name within the network ("janus", "a", ...)
    ns: str  # namespace name
    ip: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]


class Network:
    """A hub bridge and hosts on ``10.201.<n>.0/24`` (private to these namespaces)."""

    def __init__(self, tag: str = "er") -> None:
        cleanup_stale(tag)
        self.prefix = f"{tag}{os.getpid()}-{next(_counter)}"
        self.subnet = "10.201.7"
        self.hub = f"{self.prefix}-hub"
        self.hosts: dict[str, Host] = {}
        #: The impaired hosts' links, by host name (:meth:`add_impaired_host`).
        self.links: dict[str, ImpairedLink] = {}
        self._hub_routes = False
        self._namespaces: list[str] = []
        _ip("netns", "add", self.hub)
        self._namespaces.append(self.hub)
        _ip("link", "set", "lo", "up", ns=self.hub)
        _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        _ip("link", "set", "br0", "up", ns=self.hub)

    def __repr__(self) -> str:
        return f"<Network {self.prefix} hosts={sorted(self.hosts)}>"

    def add_host(self, name: str) -> Host:
        if name in self.hosts:
            return self.hosts[name]
        index = len(self.hosts) + 1
        if index > 250:
            raise ValueError("too many hosts")
        ns = f"{self.prefix}-{name}"
        _ip("netns", "add", ns)
        self._namespaces.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)
        # veth pair: "eth0" inside the host, "v<index>" on the hub's bridge
        _ip("link", "add", f"v{index}", "netns", self.hub, "type", "veth",
            "peer", "name", "eth0", "netns", ns, ns=ns)
        _ip("link", "set", f"v{index}", "master", "br0", ns=self.hub)
        _ip("link", "set", f"v{index}", "up", ns=self.hub)
        ip = f"{self.subnet}.{index}"
        _ip("addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", ns=ns)
        host = Host(name, ns, ip)
        self.hosts[name] = host
        return host

    def add_impaired_host(self, name: str, up: Impairment | None = None,
                          down: Impairment | None = None) -> Host:
        """A host whose link to the bridge goes through the impairment lab.

        ``up`` applies to what the host sends, ``down`` to what it receives (both clean
        when omitted); change them at run time through ``self.links[host.name]``.
        """
        from tests.harness.impair import CLEAN
        from tests.harness.impaired import enable_hub_routing, make_impaired_link

        if name in self.hosts:
            raise ValueError(f"host {name!r} exists already")
        index = len(self.hosts) + 1
        if index > 250:
            raise ValueError("too many hosts")
        if not self._hub_routes:
            enable_hub_routing(_ip, self.hub, f"{self.subnet}.254", 24)
            self._hub_routes = True
        ns = f"{self.prefix}-{name}"
        _ip("netns", "add", ns)
        self._namespaces.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)
        ip = f"{self.subnet}.{index}"
        self.links[name] = make_impaired_link(_ip, self.hub, ns, index, ip, 24,
                                              up or CLEAN, down or CLEAN)
        host = Host(name, ns, ip)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for link in self.links.values():
            try:
                link.close()
            except Exception as exc:
                log.warning("closing %r: %s", link, exc)
        self.links.clear()
        for ns in reversed(self._namespaces):
            try:
                _ip("netns", "del", ns)
            except RuntimeError as exc:
                log.warning("%s", exc)
        self._namespaces.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NsLoop:
    """An event loop in its own thread, inside a host's namespace.

    In-process room sessions run here; the test drives them with :meth:`run` (from sync
    code) or :meth:`call` (from async code), both with a timeout.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"nsloop-{host.name}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            setns(self.host.ns)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            raise TimeoutError(f"not done in {timeout:g} s; {self._where()}") from None

    def _where(self) -> str:
        """Where the loop's thread is now and what its tasks wait on (for a timeout's
        message: a loop blocked by a call and a task waiting on something look different)."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        stack = "".join(traceback.format_stack(frame, limit=12)) if frame else "(ended)\n"
        waits = []
        try:
            tasks = list(asyncio.all_tasks(self.loop))  # read from another thread: best effort
        except RuntimeError:
            tasks = []
        for task in tasks:
            frames = task.get_stack()
            if frames:
                code = frames[-1]
                waits.append(f"  {task.get_name()}: {code.f_code.co_filename}:"
                             f"{code.f_lineno} {code.f_code.co_name}")
        return (f"the loop thread is at:\n{stack}its tasks wait at:\n"
                + "\n".join(sorted(waits)[:40]))

    async def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return await asyncio.wait_for(asyncio.wrap_future(self.submit(coro)), timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            async def _cancel_all() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                self.run(_cancel_all(), 10)
            except Exception as exc:
                log.warning("nsloop %s: %s", self.host.name, exc)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

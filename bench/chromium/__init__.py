"""The Chromium reference: headless Debian Chromium peers in the benchmark's room.

Each Chromium runs inside its own namespace (``ip netns exec``), with the fake media
devices and a clicks WAV as its microphone, and loads ``page.html`` from a small server
on that namespace's own loopback. The page speaks the Janus WebSocket API directly and
posts what it measured back to that server (``POST /report``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.clicks import match_latencies, write_click_wav
from bench.env import BenchRoom
from tests.harness.impair import CLEAN, Impairment
from tests.harness.lifetime import child_setup
from tests.harness.netns import Host, NsLoop

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
         "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync",
         "--disable-features=MediaRouter,OptimizationHints,Translate")
PORT = 8765


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("chromium is not installed (scripts/deps.sh installs it)")


class PageServer:
    """Serves this folder and collects the pages' reports, on a namespace's loopback."""

    def __init__(self, host: Host) -> None:
        self.loop = NsLoop(host)
        self.reports: list[tuple[float, str, str, Any]] = []
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self.loop.run(self._start())

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/report", self._report)
        app.router.add_static("/", HERE)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", PORT).start()

    async def _report(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.reports.append((time.monotonic(), str(body.get("role")),
                                 str(body.get("kind")), body.get("data")))
        if body.get("kind") == "error":
            log.warning("chromium %s: %s", body.get("role"), body.get("data"))
        return web.json_response({"ok": True})

    def take(self, role: str, kind: str) -> list[Any]:
        with self._lock:
            return [d for _, r, k, d in self.reports if r == role and k == kind]

    def wait(self, role: str, kind: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.take(role, kind)
            if got:
                return got[0]
            errors = self.take(role, "error")
            if errors:
                raise RuntimeError(f"chromium {role}: {errors[0]}")
            time.sleep(0.05)
        raise TimeoutError(f"chromium {role}: no {kind!r} report within {timeout:.0f} s")

    def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                self.loop.run(runner.cleanup(), 10)
            except Exception as exc:
                log.warning("page server: %s", exc)
        self.loop.close()


class ChromiumPeer:
    """One headless Chromium in its own namespace, loading the reference page."""

    def __init__(self, env: BenchRoom, name: str, workdir: Path, audio_wav: Path,
                 up: Impairment | None = None, down: Impairment | None = None) -> None:
        self.host = env.host(name, up, down)  # behind the impairment lab with up/down
        self.workdir = workdir / self.host.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = PageServer(self.host)
        self.audio_wav = audio_wav
        self.janus_url = env.janus.url
        self.proc: subprocess.Popen[bytes] | None = None

    def open(self, **query: Any) -> None:
        qs = "&".join(f"{k}={v}" for k, v in {"janus": self.janus_url, **query}.items())
        url = f"http://127.0.0.1:{PORT}/page.html?{qs}"
        logf = (self.workdir / "chromium.log").open("ab")
        self.proc = subprocess.Popen(
            [*self.host.exec_prefix(), chromium_binary(), *FLAGS,
             f"--user-data-dir={self.workdir / 'profile'}",
             f"--use-file-for-fake-audio-capture={self.audio_wav}", url],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=child_setup())
        logf.close()

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            import os
            import signal
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        self.server.close()


class ChromiumPair:
    """A publishing and a receiving Chromium in one room (or a joining one)."""

    def __init__(self, env: BenchRoom, workdir: Path, impaired: bool = False) -> None:
        self.env = env
        self.workdir = workdir
        self.impaired = impaired  # every page behind the impairment lab (env.link(host))
        workdir.mkdir(parents=True, exist_ok=True)
        self.clicks = write_click_wav(workdir / "clicks44k.wav", rate=44_100, channels=2)
        self.peers: list[ChromiumPeer] = []
        self._pub: ChromiumPeer | None = None
        self._sub: ChromiumPeer | None = None
        self._joiner: ChromiumPeer | None = None
        self._trials = 0

    def __enter__(self) -> ChromiumPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def peer(self, name: str, wav: Path | None = None) -> ChromiumPeer:
        link = CLEAN if self.impaired else None
        p = ChromiumPeer(self.env, name, self.workdir, wav or self.clicks, up=link, down=link)
        self.peers.append(p)
        return p

    def start_clicks(self) -> None:
        """A publishing and a receiving page in a new room; returns once clicks arrive."""
        room = self.env.new_room()
        feed = 900_000 + room
        self._pub = pub = self.peer("cpub")
        self._sub = sub = self.peer("csub")
        pub.open(role="pub", room=room, feed=feed)
        pub.server.wait("pub", "published", 60)
        sub.open(role="sub", room=room, feed=feed)
        sub.server.wait("sub", "subscribed", 60)
        deadline = time.monotonic() + 30
        while not any(sub.server.take("sub", "onsets")) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not any(sub.server.take("sub", "onsets")):
            raise TimeoutError("chromium: no click reached the receiving page")

    def clicks_between(self, start: float, end: float) -> dict[str, Any]:
        """Latencies of the clicks heard between two wall-clock times (``time.time()``)."""
        assert self._pub is not None and self._sub is not None
        time.sleep(1.5)  # the pages report once a second
        sent = [t / 1000 for batch in self._pub.server.take("pub", "onsets") for t in batch]
        heard = [t / 1000 for batch in self._sub.server.take("sub", "onsets") for t in batch]
        got = match_latencies([t for t in sent if start - 0.5 < t < end],
                              [t for t in heard if start < t < end])
        return {"latencies_ms": [x * 1000 for x in got], "sent": len(sent),
                "heard": len(heard)}

    def start_joins(self, trials: int, feed: int, room: int) -> None:
        """A page that joins ``room`` ``trials`` times, timing each to the first sound of
        ``feed`` (a member already there); runs on its own, see :meth:`join_times`."""
        self._joiner = self.peer("cjoin")
        self._joiner.open(role="join", room=room, feed=feed, trials=trials)
        self._trials = trials

    def join_times(self) -> dict[str, Any]:
        assert self._joiner is not None
        times = self._joiner.server.wait("join", "join", 30 + self._trials * 6)
        return {"join_ms": list(times)}

    def close(self) -> None:
        for p in self.peers:
            try:
                p.close()
            except Exception as exc:
                log.warning("closing chromium: %s", exc)
        self.peers.clear()

"""The abuse suite: what a hostile tester did to a running appliance, kept as regressions.

In-process tests reuse the page's fixtures (:mod:`tests.web.conftest`: the real web
server and dispatcher over a fake room); the tests that need the whole appliance (a
local Janus, the real log output, a low open-file limit, signals) run ``edgeroom run
--sim`` as a child process on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.web import WebServer
from services.web.passwords import reset
from tests.harness.appliance import write_config
from tests.harness.unit_env import unit_environment
from tests.web.conftest import (
    TIMEOUT,
    Served,
    client,
    http,
    log_ring,
    login,
    make_appliance,
    served,
)

__all__ = [
    "TIMEOUT",
    "ChildAppliance",
    "Served",
    "client",
    "free_port",
    "http",
    "log_ring",
    "login",
    "serve",
    "served",
]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(tmp_path: Path, *, full: bool = False, **web: Any) -> AsyncIterator[Served]:
    """The page of an in-process appliance with ``web`` config keys changed."""
    appliance = make_appliance(tmp_path, full=full)
    appliance.config = dataclasses.replace(
        appliance.config, web=dataclasses.replace(appliance.config.web, **web))
    password = reset(appliance.state_dir)
    server = WebServer(appliance)
    await asyncio.wait_for(server.start(), TIMEOUT)
    try:
        yield Served(appliance, server, password)
    finally:
        await asyncio.wait_for(server.close(), TIMEOUT)
        await asyncio.wait_for(appliance.dispatcher.close(), TIMEOUT)


def _child_limits(nofile: int | None) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return apply


class ChildAppliance:
    """``edgeroom run --sim`` in a child process, its page on a free loopback port."""

    def __init__(self, workdir: Path, config: dict[str, dict[str, Any]],
                 nofile: int | None = None) -> None:
        self.workdir = workdir
        self.state_dir = (workdir / "state").resolve()
        self.port = free_port()
        config = {**config, "web": {"listen": f"127.0.0.1:{self.port}",
                                    **config.get("web", {})}}
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = write_config(workdir / "edgeroom.toml", config)
        self.log_path = workdir / "edgeroom.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.nofile = nofile
        self.proc: subprocess.Popen[bytes] | None = None
        self.password = ""

    def __repr__(self) -> str:
        return f"<ChildAppliance {self.url} pid={self.proc.pid if self.proc else None}>"

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        env.update(unit_environment(self.workdir / "run"))
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        self.password = subprocess.run(
            [sys.executable, "-m", "device", "password", "reset", "--state-dir",
             str(self.state_dir)], env=env, capture_output=True, text=True, check=True,
            timeout=60).stdout.strip()
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "device", "run", "--sim", "--config",
                 str(self.config_path), "--state-dir", str(self.state_dir)],
                stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                preexec_fn=_child_limits(self.nofile))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"appliance exited: {self.log_text()[-3000:]}"
            if "config page on" in self.log_text():
                return
            time.sleep(0.1)
        raise TimeoutError(f"the page did not come up: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def children(self, name: str) -> list[int]:
        """Live child processes of the appliance called ``name``."""
        assert self.proc is not None
        return [pid for pid, ppid, comm in _processes()
                if ppid == self.proc.pid and comm == name]

    def processes_using_state_dir(self) -> list[int]:
        """Processes whose command line names this appliance's state dir."""
        needle = str(self.state_dir).encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                        found.append(int(entry))
                except OSError:
                    continue
        return found

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM; returns the exit code (raises if it did not stop in time)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _processes() -> Iterator[tuple[int, int, str]]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        match = re.match(r"(\d+) \((.*)\) \S+ (\d+)", stat)
        if match:
            yield int(match[1]), int(match[3]), match[2]


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Callable[..., ChildAppliance]]:
    """``child(config, nofile=None)`` starts a child appliance; all are stopped after."""
    started: list[ChildAppliance] = []

    def start(config: dict[str, dict[str, Any]], nofile: int | None = None) -> ChildAppliance:
        app = ChildAppliance(tmp_path / f"box{len(started)}", config, nofile)
        started.append(app)
        app.start()
        return app

    yield start
    for app in started:
        try:
            app.stop(10.0)
        except subprocess.TimeoutExpired:
            pass  # killed
        # Never leave a Janus behind, whatever the test found (one the appliance lost
        # track of has been re-parented: find it by its config dir).
        for pid in app.processes_using_state_dir():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def child_login(http: aiohttp.ClientSession, app: ChildAppliance) -> str:
    async with http.post(f"{app.url}/api/login", json={"password": app.password}) as r:
        assert r.status == 200, await r.text()
        token: str = (await r.json())["csrf_token"]
        return token

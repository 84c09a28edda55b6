"""The local SFU: a Janus this box starts and supervises (``room.server = "local"``).

Its config dir is generated in the state dir on every start: only the VideoRoom,
AudioBridge and TextRoom plugins and the WebSocket transport, the configured room in all
three plugins, the API bound to ``room.local_listen`` and media limited to
``room.local_interface``. If Janus exits it is started again after a short backoff with
jitter; the room session reconnects on its own. Janus dies with the appliance, even a
SIGKILLed one (:mod:`drivers.common.children`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import time
from pathlib import Path

from drivers.base import Emit, null_emit
from drivers.common.children import child_options, kill_group
from services.room.api import RoomError
from services.room.janus.jcfg import JanusSettings, command, write_config

log = logging.getLogger(__name__)

JANUS_BIN = "/usr/bin/janus"
LOG_MAX_BYTES = 5 * 1024 * 1024
#: How long Janus gets to exit after SIGTERM before its process group is killed. It
#: holds nothing worth saving, and one still starting up may finish that first: the
#: whole room subsystem must stop within the supervisor's stop timeout.
STOP_TIMEOUT = 1.0


class JanusMissing(RoomError, FileNotFoundError):
    code = "JANUS_MISSING"


class LocalJanus:
    def __init__(self, settings: JanusSettings, workdir: Path, *, janus_bin: str = JANUS_BIN,
                 emit: Emit = null_emit) -> None:
        self.settings = settings
        self.workdir = workdir
        self.confdir = workdir / "janus"
        self.log_path = workdir / "janus.log"
        self.janus_bin = janus_bin
        self._emit = emit
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self.starts = 0

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc else None
        return f"<LocalJanus {self.url} pid={pid} starts={self.starts}>"

    @property
    def url(self) -> str:
        host = self.settings.listen_ip
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"ws://{host}:{self.settings.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def wait_ready(self, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def run(self) -> None:
        """Keep Janus running until cancelled (then stop it)."""
        if shutil.which(self.janus_bin) is None:
            raise JanusMissing(f"{self.janus_bin} not found: install the Debian package janus")
        attempt = 0
        try:
            while True:
                started = time.monotonic()
                code = await self._run_once()
                self._ready.clear()
                if time.monotonic() - started > 30:
                    attempt = 0
                delay = random.uniform(0.0, min(10.0, 0.3 * 2 ** attempt))
                attempt += 1
                log.warning("local janus exited with %s; restarting in %.2f s", code, delay)
                self._emit("sfu", {"state": "restarting", "exit_code": code,
                                   "delay": round(delay, 3)})
                await asyncio.sleep(delay)
        finally:
            await self._stop()

    async def _run_once(self) -> int:
        write_config(self.confdir, self.settings)
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_MAX_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        with self.log_path.open("ab") as logf:
            self._proc = await asyncio.create_subprocess_exec(
                *command(self.confdir, self.janus_bin), stdout=logf,
                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                cwd=self.workdir, **child_options())
        self.starts += 1
        log.info("local janus started (pid %s) on %s", self._proc.pid, self.url)
        waiter = asyncio.create_task(self._wait_listening(), name="sfu:ready")
        try:
            return await self._proc.wait()
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)

    async def _wait_listening(self) -> None:
        host = self.url.split("//", 1)[1].rsplit(":", 1)[0]
        while True:
            try:
                _, writer = await asyncio.open_connection(host, self.settings.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            self._ready.set()
            self._emit("sfu", {"state": "running", "pid": self.pid, "url": self.url})
            return

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        self._ready.clear()
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            log.warning("local janus did not stop within %.1f s; killing it", STOP_TIMEOUT)
            kill_group(proc.pid)
            await proc.wait()
        except asyncio.CancelledError:
            kill_group(proc.pid)  # no time left to wait for a clean exit: make sure it goes
            raise
        kill_group(proc.pid)  # anything it started
        log.info("local janus stopped")

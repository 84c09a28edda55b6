"""A real Janus inside a test network namespace, from a generated config dir."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from pathlib import Path

from services.room.janus.jcfg import JanusSettings, RoomSpec, command, write_config
from tests.harness.lifetime import child_setup
from tests.harness.netns import Host

log = logging.getLogger(__name__)


class JanusServer:
    """Janus running in ``host``'s namespace; ``url`` is its WebSocket API."""

    def __init__(self, host: Host, workdir: Path, rooms: tuple[RoomSpec, ...],
                 api_secret: str | None = None, port: int = 8188,
                 wss_cert: tuple[str, str] | None = None, wss_port: int = 8989,
                 string_ids: bool = False, ice_lite: bool = False,
                 ice_tcp: bool = False, full_trickle: bool = False) -> None:
        self.host = host
        self.workdir = workdir
        self.port = port
        self.wss_port = wss_port if wss_cert else None
        self.settings = JanusSettings(listen_ip=host.ip, port=port, interface="eth0",
                                      rooms=rooms, api_secret=api_secret, debug_level=4,
                                      media_ip=host.ip, wss_port=self.wss_port,
                                      wss_cert=wss_cert, string_ids=string_ids,
                                      ice_lite=ice_lite, ice_tcp=ice_tcp,
                                      full_trickle=full_trickle)
        self.confdir = workdir / "janus-conf"
        write_config(self.confdir, self.settings)
        self.log_path = workdir / "janus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://{self.host.ip}:{self.port}"

    @property
    def wss_url(self) -> str:
        """Its secure WebSocket API (with ``wss_cert`` only)."""
        return f"wss://{self.host.ip}:{self.wss_port}"

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"<JanusServer {self.url} pid={pid}>"

    def start(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.starts += 1
        logf = self.log_path.open("ab")
        # Run it in its work dir with core dumps off: a Janus that crashes while being
        # stopped must not leave a core file in the repository.
        self.proc = subprocess.Popen([*self.host.exec_prefix(), *command(self.confdir)],
                                     stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     preexec_fn=child_setup())
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited with {self.proc.returncode}; "
                                   f"log: {self.log_tail()}")
            if self._listening():
                return
            time.sleep(0.05)
        raise RuntimeError(f"janus did not listen on {self.url}; log: {self.log_tail()}")

    def _listening(self) -> bool:
        # Look for the listening socket from inside the namespace.
        out = subprocess.run([*self.host.exec_prefix(), "ss", "-ltnH", f"sport = :{self.port}"],
                             capture_output=True, text=True, timeout=5).stdout
        return bool(out.strip())

    def kill(self) -> None:
        """SIGKILL (a crash, as far as the clients can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

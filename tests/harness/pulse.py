"""A sound device with its own clock for tests: PulseAudio's null sink, through alsa-lib.

File-backed ALSA PCMs (``type file`` over ``null``) run as fast as the CPU and never
underrun. :class:`PulseServer` runs a private ``pulseaudio`` with one null sink: it
consumes what is played at exactly the real-time rate, on its own timer, and its monitor
source gives back what was played, at the same pace. alsa-lib's PulseAudio plugin
(``type pulse``, Debian ``libasound2-plugins``) makes it an ALSA device: writes block
until the sink has room, reads block until it has produced a period, and a writer that
stops feeding it gets an underrun (EPIPE, with ``handle_underrun``), as with a card.

An idle null sink sleeps in long blocks (up to 2 s), so a stream that starts (or
restarts after an underrun) would wait that long for its first period, which no card
does. A silent stream (``pacat`` from ``/dev/zero``, 20 ms latency) keeps the sink awake
at a card-like latency; silence mixed in changes nothing in the monitor.

The daemon is private to the test: its socket, runtime dir and HOME are in a temporary
directory, it loads no default script (``-n``), and clients reach it only through the
explicit server path in the asoundrc (:meth:`PulseServer.asoundrc_blocks`). It runs as
root here, which it warns about but allows in this per-user mode; shared memory is off
(root cannot pass memfd blocks to itself without warnings and stalls).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.harness.lifetime import child_setup

log = logging.getLogger(__name__)

SINK = "edgeroom_null"


def _realtime_prefix() -> list[str]:
    """``chrt -f 20`` when allowed: a busy test machine then starves the sink's clock less
    (a card keeps time whatever the CPU does; the daemon emulating one needs help)."""
    chrt = shutil.which("chrt")
    if chrt is None:
        return []
    ok = subprocess.run([chrt, "-f", "20", "true"], capture_output=True, timeout=5)
    return [chrt, "-f", "20"] if ok.returncode == 0 else []


class PulseServer:
    """``pulseaudio`` with a 48 kHz mono null sink ``SINK``, listening on ``socket``."""

    def __init__(self, workdir: Path, rate: int = 48000, channels: int = 1) -> None:
        self.workdir = workdir
        self.socket = workdir / "native"
        self.rate = rate
        self.channels = channels
        self.log_path = workdir / "pulseaudio.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._keepalive: subprocess.Popen[bytes] | None = None

    @staticmethod
    def missing() -> str | None:
        """Why a PulseServer cannot run here, or None."""
        if shutil.which("pulseaudio") is None:
            return "needs pulseaudio (Debian: pulseaudio)"
        if shutil.which("pacat") is None:
            return "needs pacat (Debian: pulseaudio-utils)"
        if not any(Path(d, "libasound_module_pcm_pulse.so").exists() for d in
                   ("/usr/lib/x86_64-linux-gnu/alsa-lib", "/usr/lib/aarch64-linux-gnu/alsa-lib",
                    "/usr/lib/arm-linux-gnueabihf/alsa-lib", "/usr/lib/alsa-lib")):
            return "needs alsa-lib's PulseAudio plugin (Debian: libasound2-plugins)"
        return None

    @property
    def env(self) -> dict[str, str]:
        runtime = self.workdir / "run"
        return {"HOME": str(self.workdir), "XDG_RUNTIME_DIR": str(runtime),
                "XDG_CONFIG_HOME": str(self.workdir / "config"),
                "PULSE_SERVER": f"unix:{self.socket}",
                "PULSE_CLIENTCONFIG": str(self.workdir / "client.conf")}

    def start(self, timeout: float = 10.0) -> None:
        (self.workdir / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.workdir / "client.conf").write_text("autospawn = no\nenable-shm = no\n")
        script = self.workdir / "default.pa"
        script.write_text(
            f"load-module module-null-sink sink_name={SINK} rate={self.rate} "
            f"channels={self.channels} format=s16le\n"
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"set-default-sink {SINK}\nset-default-source {SINK}.monitor\n")
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(
                [*_realtime_prefix(), "pulseaudio", "--system=false", "-n", "--daemonize=no",
                 "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no",
                 "--disable-shm=yes", "--log-level=warning", "-F", str(script)],
                stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir,
                env={**os.environ, **self.env}, preexec_fn=child_setup())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self.socket.exists():
                self._keep_awake()
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pulseaudio did not listen on {self.socket}: {self.log_tail()}")

    def _keep_awake(self) -> None:
        with self.log_path.open("ab") as logf:
            self._keepalive = subprocess.Popen(
                ["pacat", "--playback", "--raw", "--format=s16le", f"--rate={self.rate}",
                 f"--channels={self.channels}", "--latency-msec=20", f"--device={SINK}",
                 "/dev/zero"], stdout=logf, stderr=subprocess.STDOUT, cwd=self.workdir,
                env={**os.environ, **self.env}, preexec_fn=child_setup())
        time.sleep(0.2)
        if self._keepalive.poll() is not None:
            self.stop()
            raise RuntimeError(f"pacat (keeping the null sink awake) exited: {self.log_tail()}")

    def asoundrc_blocks(self, playback: str, capture: str) -> str:
        """ALSA PCMs: ``playback`` plays into the null sink, ``capture`` records its monitor."""
        server = f'    server "unix:{self.socket}"'
        return (f"pcm.{playback} {{\n    type pulse\n{server}\n    device \"{SINK}\"\n"
                f"    handle_underrun true\n}}\n"
                f"pcm.{capture} {{\n    type pulse\n{server}\n    device \"{SINK}.monitor\"\n}}\n")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        for proc in (self._keepalive, self.proc):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._keepalive = self.proc = None

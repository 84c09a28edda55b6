"""Fixtures for the media tests: a real nginx-rtmp server on loopback, sim camera and mic."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import (  # noqa: F401  (fixtures for the room part)
    janus,
    make_peer,
    network,
    room_number,
)

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

NGINX_CONF = """\
load_module {module};
user root;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record all;
            record_path {dir}/rec;
            record_unique on;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtmpServer:
    """nginx with libnginx-mod-rtmp, in the foreground, on ``127.0.0.1:<port>``.

    ``record all`` keeps a copy of every published stream in ``rec_dir`` (one FLV per
    publish, since ``record_unique``), which the tests read back.
    """

    def __init__(self, directory: Path, netns: str | None = None) -> None:
        self.netns = netns  # run inside this network namespace (on its loopback)
        self.dir = directory
        self.rec_dir = directory / "rec"
        self.rec_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = directory / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(module=RTMP_MODULE, dir=directory,
                                               port=self.port))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str = "test") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self, timeout: float = 10.0) -> None:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        # (ip netns exec execs nginx: the pid stays the master's)
        self.proc = subprocess.Popen(
            [*prefix, "nginx", "-p", str(self.dir), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited: {err}\n{self.log_tail()}")
            if self._listening():
                return
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}\n{self.log_tail()}")

    def _listening(self) -> bool:
        if self.netns is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        out = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-Hltn",
                              f"sport = :{self.port}"], capture_output=True, text=True,
                             timeout=5).stdout
        return bool(out.strip())

    def kill(self) -> None:
        """SIGKILL the master and its worker (the server disappears at once)."""
        if self.proc is None:
            return
        pids = [self.proc.pid]
        pid_file = self.dir / "nginx.pid"
        try:
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                 text=True, timeout=5).stdout
            pids += [int(p) for p in out.split()]
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(5)
        self.proc = None
        pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: finishes the recordings
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def recordings(self) -> list[Path]:
        return sorted(self.rec_dir.glob("*.flv"), key=lambda p: p.stat().st_mtime)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "error.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[RtmpServer]:
    if shutil.which("nginx") is None or not RTMP_MODULE.exists():
        pytest.fail("nginx with libnginx-mod-rtmp is required (scripts/deps.sh installs it)")
    server = RtmpServer(tmp_path / "nginx")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(autouse=True)
def _reset_encoder_counts() -> Iterator[None]:
    from services.media.encoder import SharedVideoEncoder

    SharedVideoEncoder.created = 0
    SharedVideoEncoder.running = 0
    yield


def probe(path: Path | str, **open_kwargs: Any) -> dict[str, Any]:
    """Decode a file or stream to its end: codecs, durations, frame numbers, timestamps."""
    import av

    from drivers.camera.strip import decode_strip

    result: dict[str, Any] = {"video_codec": None, "audio_codec": None, "frame_numbers": [],
                              "video_times": [], "audio_times": [], "audio_samples": 0,
                              "unreadable_strips": 0, "errors": []}
    with av.open(str(path), **open_kwargs) as container:
        if container.streams.video:
            result["video_codec"] = container.streams.video[0].codec_context.name
            result["profile"] = container.streams.video[0].codec_context.profile
        if container.streams.audio:
            result["audio_codec"] = container.streams.audio[0].codec_context.name
        try:
            for packet in container.demux():
                # (the last packet of each stream, without dts, flushes its decoder)
                for frame in packet.decode():
                    t = float(frame.time) if frame.time is not None else None
                    if packet.stream.type == "video":
                        info = decode_strip(frame)
                        if info is None:
                            result["unreadable_strips"] += 1
                        else:
                            result["frame_numbers"].append(info.frame_number)
                        result["video_times"].append(t)
                    elif packet.stream.type == "audio":
                        result["audio_times"].append(t)
                        result["audio_samples"] += frame.samples
        except av.FFmpegError as exc:
            result["errors"].append(str(exc))
    return result


def is_increasing(values: list[Any]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))

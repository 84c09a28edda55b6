"""Publishing in a VP8 room with recording on: the cost of the second encode.

Janus's default room codec is VP8, while recordings (and RTMP) are H.264: in a VP8 room
with a recording on, the box encodes every camera frame twice (libvpx for the room,
x264 for the file), in an H.264 room once. An ``edgeroom run --sim`` process publishes
640x480@30 into each kind of room in turn, starts recording over its serial line (a pty),
and its CPU time (all threads, from ``/proc``) is measured over :data:`SECONDS` s. A
listener in the room decodes the box's video meanwhile, so the figure comes with the
frame rate that arrived and the codec it arrived in.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_publish import FPS, HEIGHT, WIDTH, VideoWatch, summarize
from bench.env import BenchRoom, wait_until
from bench.proccpu import proc_cpu_seconds
from bench.report import Row
from tests.harness.pty import Pty

log = logging.getLogger(__name__)

SECONDS = 15.0
WARMUP_S = 3.0


def _serial_command(pty: Pty, line: str, timeout: float = 10.0) -> str:
    """Send one command line; the reply line (EV lines before it are skipped)."""
    pty.send(line.encode() + b"\r\n")
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        buf += pty.recv_until(b"\r\n", max(0.1, deadline - time.monotonic()))
        while b"\r\n" in buf:
            got, _, buf = buf.partition(b"\r\n")
            text = got.decode(errors="replace")
            if text.startswith(("OK", "ERR")):
                return text
    raise TimeoutError(f"no reply to {line!r}")


def publish_with_recording(env: BenchRoom, room: int, name: str) -> dict[str, Any]:
    watch = VideoWatch()
    listener = env.peer("watch", room, tone=None, role="listener")
    listener.session._on_remote_video = watch
    listener.call(lambda s: s.join())
    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp:
        pty = Pty(Path(tmp) / "ttyAV")
        try:
            app = env.appliance(name, {
                "room": {"room": room, "display_name": name, "auto_join": True},
                "video": {"enabled": True, "receive": False, "width": WIDTH, "height": HEIGHT,
                          "fps": FPS, "backend": "sim"},
                "audio": {"backend": "sim"},
                "serial": {"port": str(pty.link)},
            })
            wait_until(lambda: watch.frames, 60, f"video from the appliance ({name})")
            reply = _serial_command(pty, "RECORD START")
            if not reply.startswith("OK"):
                raise RuntimeError(f"RECORD START: {reply}")
            time.sleep(WARMUP_S)
            assert app.pid is not None
            c0, t0 = proc_cpu_seconds(app.pid), time.monotonic()
            time.sleep(SECONDS)
            cpu, wall = proc_cpu_seconds(app.pid) - c0, time.monotonic() - t0
            _serial_command(pty, "RECORD STOP")
            alive = app.alive()
            codec = codec_in(listener)
            app.stop()
        finally:
            pty.close()
    frames = watch.take(t0)
    video = summarize(max(frames.values(), key=len) if frames else [])
    env.drop_peer(listener)
    return {"cpu_s": cpu, "wall_s": wall, "video": video, "codec": codec, "alive": alive}


def codec_in(listener: Any) -> str | None:
    """The video codec the listener's subscription carries (from Janus's offer)."""
    pc = listener.session._backend.sub_pc if listener.session._backend else None
    if pc is None or pc.remoteDescription is None:
        return None
    in_video = False
    for line in pc.remoteDescription.sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video") and not line.startswith("m=video 0 ")
        elif in_video and line.startswith("a=rtpmap:") and "rtx/" not in line:
            return line.split()[1].split("/")[0].lower()
    return None


def measure() -> dict[str, Any]:
    with BenchRoom("bc") as env:
        h264 = publish_with_recording(env, env.new_room(), "h264room")
        vp8 = publish_with_recording(env, env.new_vp8_room(), "vp8room")
    return {"h264_room": h264, "vp8_room": vp8, "seconds": SECONDS}


def run() -> list[Row]:
    m = measure()
    h, v = m["h264_room"], m["vp8_room"]
    notes = (f"{WIDTH}x{HEIGHT}@{FPS}, whole process; received {v['codec']} "
             f"{v['video'].get('fps', 0):.1f} fps in the VP8 room, {h['codec']} "
             f"{h['video'].get('fps', 0):.1f} fps in the H.264 room")
    return [Row("publish", f"process CPU, {SECONDS:.0f} s VP8 room + recording (2 encodes)",
                v["cpu_s"], "s", h["cpu_s"], "H.264 room + recording (1 encode)",
                notes=notes, extra=m)]


if __name__ == "__main__":
    import json

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(), indent=2, default=str))

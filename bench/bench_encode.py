"""CPU to publish 640x480@30 H.264: our shared-encoder path against the ffmpeg CLI.

Both encode the same 900 sim-camera frames (30 s of video at 30 fps; run faster than real
time) with the same x264 settings (ultrafast, zerolatency, constrained baseline, 1 Mbps,
2 s GOP). Ours is the whole publishing path: the encoder stage, its fan-out, the room's
track and aiortc's RTP packetizer (``H264Encoder.pack``), measured as this process' CPU
time; ffmpeg reads the raw yuv420p frames from a pipe and its CPU is its own (children's
rusage). Frames are rendered before the clock starts (60 distinct frames, cycled).

A second figure adds a recording (MKV) and an RTMP push (to nginx-rtmp on loopback) to
the room: the extra CPU is muxing only, as nothing is encoded twice.

``measure()`` returns a dict, ``run()`` rows for ``python -m bench``;
``python -m bench.bench_encode`` prints the dict.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
from aiortc.codecs.h264 import H264Encoder

from drivers.camera.base import CapturedFrame
from drivers.camera.sim import PatternRenderer
from services.media.encoder import SharedVideoEncoder
from services.media.recorder import Recorder
from services.media.rtmp import RtmpStreamer
from services.media.track import EncodedVideoTrack
from tests.harness.lifetime import child_setup

try:
    from bench.report import Row
except ImportError:  # run as a plain script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.report import Row

WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 30, 900
BITRATE_KBPS, GOP_SECONDS = 1000, 2.0
DISTINCT = 60


class ReplayCamera:
    """A :class:`VideoSource` that hands out pre-rendered frames as fast as they are read
    (like a camera handing over its own buffers: no copy, no conversion)."""

    def __init__(self, planes: list[bytes], count: int) -> None:
        self.width, self.height, self.fps = WIDTH, HEIGHT, FPS
        self._frames = []
        for raw in planes:
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            _fill(frame, raw)
            self._frames.append(frame)
        self._count = count
        self._n = 0
        self._t0 = time.monotonic()

    async def start(self) -> None:
        self._t0 = time.monotonic()

    async def read(self) -> CapturedFrame:
        if self._n >= self._count:
            raise EOFError("replay finished")
        await asyncio.sleep(0)
        n = self._n
        self._n += 1
        return CapturedFrame(self._frames[n % len(self._frames)], n, self._t0 + n / FPS)

    @property
    def stats(self) -> dict[str, int]:
        return {"captured": self._n, "delivered": self._n, "skipped": 0, "reopens": 0}

    async def stop(self) -> None:
        self._n = self._count


def _fill(frame: av.VideoFrame, raw: bytes) -> None:
    offset = 0
    for index, (w, h) in enumerate(((WIDTH, HEIGHT), (WIDTH // 2, HEIGHT // 2),
                                    (WIDTH // 2, HEIGHT // 2))):
        plane = frame.planes[index]
        if plane.line_size == w:
            plane.update(raw[offset:offset + w * h])
        else:
            view = memoryview(plane).cast("B")
            for row in range(h):
                start = row * plane.line_size
                view[start:start + w] = raw[offset + row * w: offset + (row + 1) * w]
        offset += w * h


def render_frames() -> list[bytes]:
    renderer = PatternRenderer(WIDTH, HEIGHT)
    out = []
    for n in range(DISTINCT):
        frame = renderer.render(n, 0.0)
        planes = []
        for index, (w, h) in enumerate(((WIDTH, HEIGHT), (WIDTH // 2, HEIGHT // 2),
                                        (WIDTH // 2, HEIGHT // 2))):
            plane = frame.planes[index]
            data = bytes(plane)
            planes.append(b"".join(data[r * plane.line_size: r * plane.line_size + w]
                                   for r in range(h)))
        out.append(b"".join(planes))
    return out


async def _ours(planes: list[bytes], outputs: Path | None, rtmp_url: str | None
                ) -> dict[str, Any]:
    camera = ReplayCamera(planes, FRAMES)  # made before the clock starts
    encoder = SharedVideoEncoder(lambda: camera, encoder="libx264",
                                 bitrate_kbps=BITRATE_KBPS, gop_seconds=GOP_SECONDS)
    track = EncodedVideoTrack(encoder, codec="h264")
    assert track.sub is not None
    track.sub.maxsize = 120  # a benchmark must not win by dropping
    packer = H264Encoder()
    recorder = streamer = None
    if outputs is not None:
        recorder = Recorder(encoder, None, directory=outputs, fmt="mkv", segment_seconds=3600,
                            min_free_mb=0)
    if rtmp_url is not None:
        streamer = RtmpStreamer(encoder, None)
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    await encoder.start()
    if recorder is not None:
        await recorder.start()
    if streamer is not None and rtmp_url is not None:
        await streamer.start(rtmp_url)
    payloads = 0
    received = 0
    while received < FRAMES:
        try:
            packet = await asyncio.wait_for(track.recv(), 10)
        except TimeoutError:
            break
        received += 1
        payloads += len(packer.pack(packet)[0])
    if recorder is not None:
        await recorder.stop()
    if streamer is not None:
        await streamer.stop()
    await encoder.stop()
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    track.stop()
    return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "frames": received,
            "rtp_payloads": payloads, "room_drops": track.sub.dropped if track.sub else 0,
            "encoder_thread_cpu_s": encoder.stats["encode_cpu_seconds"],
            "bytes": encoder.encode_of("h264").bytes_out,
            "recorded_bytes": recorder.status()["files"] and sum(
                (outputs / name).stat().st_size for name in recorder.status()["files"])
            if recorder is not None and outputs is not None else 0,
            "streamed_bytes": streamer.bytes_sent if streamer is not None else 0}


def x264_cli_args() -> list[str]:
    """Our x264 settings as the ``ffmpeg`` CLI's options."""
    from services.media.codec_options import x264_threads

    return ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-threads", str(x264_threads(WIDTH, HEIGHT)),
            "-profile:v", "baseline", "-level", "3.1", "-b:v", f"{BITRATE_KBPS}k",
            "-maxrate", f"{BITRATE_KBPS}k", "-bufsize", f"{BITRATE_KBPS // 2}k",
            "-g", str(round(GOP_SECONDS * FPS))]


def vp8_cli_args() -> list[str]:
    """A VP8 room's libvpx settings (``services.media.codec_options.vp8_options``: real
    time, error resilient, CBR, the box's speed for this size) as the ``ffmpeg`` CLI's
    options."""
    from services.media.codec_options import vp8_cpu_used, vp8_options

    options = vp8_options(BITRATE_KBPS, vp8_cpu_used(WIDTH, HEIGHT))
    return ["-c:v", "libvpx", "-b:v", f"{BITRATE_KBPS}k", "-qmin", "4", "-qmax", "56",
            "-threads", "1", "-g", str(round(GOP_SECONDS * FPS)),
            *[x for k, v in options.items() for x in (f"-{k}", v)]]


def _ffmpeg(planes: list[bytes], paced: bool = False) -> dict[str, Any]:
    """The ``ffmpeg`` CLI encoding the frames with our x264 settings: as fast as it can,
    or ``paced`` at the frame rate (``-re``: the frames arrive as a live camera's do)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", *(["-re"] if paced else []),
           "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
           *x264_cli_args(), "-f", "h264", "-y", "/dev/null"]
    wall0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for n in range(FRAMES):
        proc.stdin.write(planes[n % len(planes)])
    proc.stdin.close()
    proc.wait(120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": round(cpu, 3), "wall_s": round(time.monotonic() - wall0, 3),
            "returncode": proc.returncode}


def _nginx(directory: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    module = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
    if shutil.which("nginx") is None or not module.exists():
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = directory / "nginx.conf"
    conf.write_text(
        f"load_module {module};\nworker_processes 1;\npid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log;\nevents {{ worker_connections 16; }}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; "
        f"record off; }} }} }}\n")
    proc = subprocess.Popen(["nginx", "-p", str(directory), "-c", str(conf),
                             "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=child_setup())
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"rtmp://127.0.0.1:{port}/live/bench"
        except OSError:
            time.sleep(0.05)
    _stop_nginx(proc)
    return None


def _stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # SIGTERM: the master takes its worker down with it
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def best_of(runs: int, fn: Any) -> dict[str, Any]:
    results = [fn() for _ in range(runs)]
    return min(results, key=lambda r: r["cpu_s"])


def measure(runs: int = 2) -> dict[str, Any]:
    planes = render_frames()
    ours = best_of(runs, lambda: asyncio.run(_ours(planes, None, None)))
    ffmpeg = best_of(runs, lambda: _ffmpeg(planes))
    result: dict[str, Any] = {
        "frames": FRAMES, "size": f"{WIDTH}x{HEIGHT}@{FPS}",
        "ours_cpu_s": ours["cpu_s"], "ffmpeg_cpu_s": ffmpeg["cpu_s"],
        "ratio_vs_ffmpeg": round(ours["cpu_s"] / ffmpeg["cpu_s"], 3),
        "ours": ours, "ffmpeg": ffmpeg,
    }
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        server = _nginx(Path(tmp))
        try:
            url = server[1] if server is not None else None
            rec = Path(tmp) / "rec"
            rec.mkdir()

            def all_outputs() -> dict[str, Any]:
                for f in rec.iterdir():
                    f.unlink()
                return asyncio.run(_ours(planes, rec, url))

            everything = best_of(runs, all_outputs)
        finally:
            if server is not None:
                _stop_nginx(server[0])
    result["room_recording_rtmp_cpu_s"] = everything["cpu_s"]
    result["room_recording_rtmp"] = everything
    result["outputs_ratio_vs_room_alone"] = round(everything["cpu_s"] / ours["cpu_s"], 3)
    result["rtmp_included"] = server is not None
    return result


def run() -> list[Row]:
    m = measure()
    note = f"{m['frames']} frames {m['size']}, x264 ultrafast zerolatency {BITRATE_KBPS} kbps"
    return [
        Row("encode", "CPU to publish 30 s of 640x480@30 H.264", m["ours_cpu_s"], "s",
            m["ffmpeg_cpu_s"], "ffmpeg CLI", notes=note, extra=m["ours"]),
        Row("encode", "CPU with room + recording + RTMP", m["room_recording_rtmp_cpu_s"], "s",
            m["ours_cpu_s"], "room alone", notes="one encode, three outputs",
            extra=m["room_recording_rtmp"]),
    ]


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))

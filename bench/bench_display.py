"""CPU per tile on the room screen, beside decoding the same stream with the ffmpeg CLI.

A 640x480@30 H.264 stream of the sim camera's pattern (x264, made before any clock
starts) is what each member sends. For 1 and 4 members on a 1280x720 sim screen in the
grid layout (one 1280x720 tile; four 640x360 tiles), each member's stream is decoded by
its own libavcodec decoder (as aiortc's receiver does) and handed to the screen in real
time, 30 frames a second, for :data:`SECONDS` s. Our figure is the process' CPU time
(every thread) over that span, per tile: decode, scale and convert to the tile (one
libswscale pass), composition and present. The reference is the ffmpeg CLI decoding the
same stream and scaling it to the same tile size in ``bgra`` (``-f null``), its own CPU
(children's rusage); the decode-only CLI run is in the extra figures.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from bench.report import Row
from drivers.camera.sim import PatternRenderer
from drivers.display.sim import SimDisplay
from services.display.screen import RoomScreen
from services.display.settings import DisplaySettings
from services.room.api import Controls, Member

WIDTH, HEIGHT, FPS = 640, 480, 30
SECONDS = 10
SCREEN = (1280, 720)
TILES = {1: (1280, 720), 4: (640, 360)}  # members -> the tile size of the grid


def make_stream(path: Path) -> None:
    """SECONDS of the pattern as an Annex B H.264 file (x264 veryfast, 1 Mbps, 2 s GOP)."""
    renderer = PatternRenderer(WIDTH, HEIGHT)
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.bit_rate = 1_000_000
    codec.gop_size = 2 * FPS
    codec.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline"}
    with path.open("wb") as out:
        for n in range(SECONDS * FPS):
            frame = renderer.render(n, 0.0)
            frame.pts = n
            for packet in codec.encode(frame):
                out.write(bytes(packet))
        for packet in codec.encode(None):
            out.write(bytes(packet))


def packets(path: Path) -> list[bytes]:
    parser = av.CodecContext.create("h264", "r")
    return [bytes(p) for p in parser.parse(path.read_bytes())]


class _Room:
    def __init__(self, count: int) -> None:
        self.list = [Member(str(i + 1), f"member {i + 1}", has_video=True)
                     for i in range(count)]
        self.controls = Controls()

    def members(self) -> list[Member]:
        return self.list


async def _ours(stream: list[bytes], count: int) -> dict[str, Any]:
    display = SimDisplay(*SCREEN)
    screen = RoomScreen(display, DisplaySettings(layout="grid"))
    screen.attach(_Room(count))
    decoders = [av.CodecContext.create("h264", "r") for _ in range(count)]
    task = asyncio.create_task(screen.run(), name="display")
    await asyncio.sleep(0.2)
    cpu0, wall0 = time.process_time(), time.monotonic()
    decoded = 0
    for n, data in enumerate(stream):
        due = wall0 + n / FPS
        # always yield: frames come from the network's tasks, never in one burst
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        for i, decoder in enumerate(decoders):
            for frame in decoder.decode(av.Packet(data)):
                decoded += 1
                screen.on_video(str(i + 1), frame)
    await asyncio.sleep(0.1)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "decoded": decoded,
            "renders": screen.renders, "render_thread_cpu_s": round(screen.render_cpu_s, 3),
            "frames_drawn_per_tile": round(sum(screen.frames_shown.values()) / count),
            "tiles": len(screen.status()["tiles"])}


def _ffmpeg(path: Path, size: tuple[int, int] | None) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "h264", "-i", str(path)]
    if size is not None:
        cmd += ["-vf", f"scale={size[0]}:{size[1]}", "-pix_fmt", "bgra"]
    cmd += ["-f", "null", "-"]
    subprocess.run(cmd, check=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": round((after.ru_utime - before.ru_utime)
                           + (after.ru_stime - before.ru_stime), 3)}


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-display-") as tmp:
        path = Path(tmp) / "pattern.h264"
        make_stream(path)
        stream = packets(path)
        result: dict[str, Any] = {"frames": len(stream), "decode_only_ffmpeg": min(
            (_ffmpeg(path, None) for _ in range(2)), key=lambda r: r["cpu_s"])}
        for count, tile in TILES.items():
            ours = min((asyncio.run(_ours(stream, count)) for _ in range(2)),
                       key=lambda r: r["cpu_s"])
            ffmpeg = min((_ffmpeg(path, tile) for _ in range(2)), key=lambda r: r["cpu_s"])
            result[str(count)] = {"ours": ours, "ffmpeg_scaled": ffmpeg, "tile": tile}
    return result


def run() -> list[Row]:
    m = measure()
    rows = []
    for count, tile in TILES.items():
        got = m[str(count)]
        rows.append(Row(
            "display", f"CPU per shown tile, {count} member(s), {tile[0]}x{tile[1]}",
            round(got["ours"]["cpu_s"] / count, 3), "s",
            got["ffmpeg_scaled"]["cpu_s"], "ffmpeg CLI decode+scale",
            notes=f"{SECONDS} s of 640x480@30 H.264 per member, paced; screen "
                  f"{SCREEN[0]}x{SCREEN[1]}; {got['ours']['frames_drawn_per_tile']} of "
                  f"{m['frames']} frames drawn a tile",
            extra={**got, "decode_only_ffmpeg": m["decode_only_ffmpeg"]}))
    return rows

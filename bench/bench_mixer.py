"""Mixer: CPU per added remote audio stream, 1 to 16 streams.

The room's :class:`~services.room.mixer.RemoteAudioMixer` is fed N synthetic remote
tracks that hand out decoded frames exactly as aiortc's Opus decoder does (48 kHz s16
stereo, 20 ms, paced in real time); its clock mixes into a sink that drops the frames.
CPU is this process' CPU time over a fixed stretch. The slope over N is the cost of one
more stream. The reference is what one stream costs before it reaches the mixer: PyAV's
Opus decoder decoding 50 packets a second, measured here the same way.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from typing import Any

import av
import numpy as np

from bench.report import Row
from drivers.audio.base import PcmFrame
from services.room.mixer import RemoteAudioMixer

log = logging.getLogger(__name__)

COUNTS = (1, 2, 4, 8, 16)
SECONDS = 2.5
RATE = 48_000
SAMPLES = 960


def _decoded_frame(pts: int) -> av.AudioFrame:
    t = (np.arange(SAMPLES) + pts) / RATE
    mono = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    data = np.repeat(mono, 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


class SyntheticTrack:
    """What aiortc's remote audio track hands the mixer, every 20 ms."""

    kind = "audio"

    def __init__(self, frames: list[av.AudioFrame]) -> None:
        self._frames = frames
        self._n = 0
        self._start = time.monotonic()

    async def recv(self) -> av.AudioFrame:
        due = self._start + self._n * SAMPLES / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = self._frames[self._n % len(self._frames)]
        self._n += 1
        return frame


class NullSink:
    """A speaker that pulls its source every 20 ms on its own thread and plays nothing."""

    def __init__(self) -> None:
        self.frames = 0
        self._source: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-speaker", daemon=True)
        self._thread.start()

    def set_source(self, source: Any) -> None:
        self._source = source

    def write(self, frame: PcmFrame) -> None:
        self.frames += 1

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += 0.02
            source = self._source
            if source is not None:
                source(960, due)
                self.frames += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


async def _mixer_cpu(n: int, frames: list[av.AudioFrame]) -> dict[str, float]:
    sink = NullSink()
    mixer = RemoteAudioMixer(sink)  # type: ignore[arg-type]
    for i in range(n):
        mixer.add_track(f"m{i}", SyntheticTrack(frames))
    mixer.start()
    await asyncio.sleep(0.5)  # settle
    c0, w0, f0 = time.process_time(), time.monotonic(), sink.frames
    await asyncio.sleep(SECONDS)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    out = sink.frames - f0
    await mixer.stop()
    sink.close()
    return {"streams": n, "cpu_ms_per_s": cpu / wall * 1000, "frames_out": out}


async def _idle_cpu() -> float:
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(SECONDS)
    return (time.process_time() - c0) / (time.monotonic() - w0) * 1000


def _opus_decode_cpu() -> float:
    """CPU ms per second of audio to decode one 48 kHz Opus stream (PyAV/libopus)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "stereo"
    enc.format = av.AudioFormat("s16")
    enc.bit_rate = 64_000
    packets: list[Any] = []
    for i in range(250):  # 5 s
        packets += enc.encode(_decoded_frame(i * SAMPLES))
    dec = av.CodecContext.create("opus", "r")
    dec.sample_rate = RATE
    dec.layout = "stereo"
    c0 = time.process_time()
    rounds = 4
    for _ in range(rounds):
        for p in packets:
            dec.decode(p)
    cpu = time.process_time() - c0
    return cpu / (rounds * len(packets) * SAMPLES / RATE) * 1000


def _slope(xs: list[float], ys: list[float]) -> float:
    x, y = np.array(xs), np.array(ys)
    return float(np.polyfit(x, y, 1)[0])


def measure() -> dict[str, Any]:
    frames = [_decoded_frame(i * SAMPLES) for i in range(50)]

    async def all_counts() -> tuple[float, list[dict[str, float]]]:
        idle = await _idle_cpu()
        return idle, [await _mixer_cpu(n, frames) for n in COUNTS]

    idle, points = asyncio.run(all_counts())
    slope = _slope([p["streams"] for p in points], [p["cpu_ms_per_s"] for p in points])
    return {"idle_ms_per_s": idle, "points": points, "per_stream_ms_per_s": slope,
            "opus_decode_ms_per_s": _opus_decode_cpu()}


def run() -> list[Row]:
    m = measure()
    ref = m["opus_decode_ms_per_s"]
    rows = [Row("mixer", "CPU per added stream", m["per_stream_ms_per_s"], "ms CPU/s", ref,
                "opus decode, 1 stream", notes="slope over 1-16 streams",
                extra=m)]
    for p in m["points"]:
        if p["streams"] in (1, 16):
            rows.append(Row("mixer", f"CPU with {p['streams']} streams", p["cpu_ms_per_s"],
                            "ms CPU/s", ref * p["streams"], f"opus decode x{p['streams']}",
                            notes=f"late ticks {p['late_ticks']:.0f}"))
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))

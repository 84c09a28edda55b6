"""Mixer: CPU per added remote audio stream, 1 to 16 streams.

The room's :class:`~services.room.mixer.RemoteAudioMixer` gets N remote tracks whose
receivers are tapped as in a room (:func:`services.room.rtc.tap_audio_packets`): a task
per stream hands the tap a 20 ms Opus packet every 20 ms, as aiortc's receiver does, and
each member's jitter buffer orders, decodes and mixes them as a sink thread pulls 20 ms
every 20 ms. CPU is this process' CPU time over a fixed stretch; the slope over N is the
cost of one more stream, decoding included. The reference is PyAV's Opus decoder alone
decoding 50 packets a second (what aiortc's receiver spent before the mixer).
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


class PacedPackets:
    """A remote track's receiver, tapped, handed one Opus packet every 20 ms."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        from aiortc.jitterbuffer import JitterBuffer

        from services.room.rtc import tap_audio_packets

        self.track = self  # what the tap is looked up by, as aiortc's receiver.track
        self._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=4)
        tap = tap_audio_packets(self)
        assert tap is not None
        self.tap = tap
        self._packets = packets

    async def recv(self) -> Any:  # a tapped track yields nothing, as in a room
        await asyncio.Event().wait()

    async def feed(self) -> None:
        from aiortc.rtp import RtpPacket

        start = time.monotonic()
        n = 0
        while True:
            await asyncio.sleep(max(0.0, start + n * SAMPLES / RATE - time.monotonic()))
            packet = RtpPacket(sequence_number=n & 0xFFFF, timestamp=(n * SAMPLES) & 0xFFFFFFFF)
            packet._data = self._packets[n % len(self._packets)]  # type: ignore[attr-defined]
            self.tap.add(packet)
            n += 1


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


async def _mixer_cpu(n: int, packets: list[bytes]) -> dict[str, float]:
    sink = NullSink()
    mixer = RemoteAudioMixer(sink)  # type: ignore[arg-type]
    streams = [PacedPackets(packets) for _ in range(n)]
    for i, stream in enumerate(streams):
        mixer.add_track(f"m{i}", stream)
    feeders = [asyncio.create_task(s.feed(), name=f"bench:feed{i}")
               for i, s in enumerate(streams)]
    mixer.start()
    await asyncio.sleep(0.5)  # settle
    c0, w0, f0 = time.process_time(), time.monotonic(), sink.frames
    await asyncio.sleep(SECONDS)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    out = sink.frames - f0
    for task in feeders:
        task.cancel()
    await asyncio.gather(*feeders, return_exceptions=True)
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


def _opus_packets(count: int = 50) -> list[bytes]:
    from services.audio.opus import OpusEncoder

    with OpusEncoder(channels=2, bitrate=64_000) as enc:
        return [enc.encode(_decoded_frame(i * SAMPLES).to_ndarray().reshape(-1))
                for i in range(count)]


def measure() -> dict[str, Any]:
    packets = _opus_packets()

    async def all_counts() -> tuple[float, list[dict[str, float]]]:
        idle = await _idle_cpu()
        return idle, [await _mixer_cpu(n, packets) for n in COUNTS]

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
                            notes="decode, jitter buffer and mix"))
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))

"""RTMP live streaming against a real nginx-rtmp on loopback."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import pytest

from drivers.camera.strip import decode_strip
from services.media import rtmp
from services.media.encoder import SharedVideoEncoder
from services.media.rtmp import redact_url

from .conftest import RtmpServer, is_increasing, probe
from .helpers import FPS, Events, make_service

pytestmark = pytest.mark.slow


class Puller(threading.Thread):
    """Plays the stream back from the server with PyAV while it is being pushed."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(name="rtmp-puller", daemon=True)
        self.url = url
        self.seconds = seconds
        self.codecs: dict[str, str] = {}
        self.frame_numbers: list[int] = []
        self.video_dts: list[int] = []
        self.audio_dts: list[int] = []
        self.audio_frames = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with av.open(self.url, options={"rtmp_live": "live"}, timeout=(10.0, 5.0)) as c:
                for stream in c.streams:
                    self.codecs[stream.type] = stream.codec_context.name
                end = time.monotonic() + self.seconds
                for packet in c.demux():
                    if packet.dts is None:
                        continue
                    if packet.stream.type == "video":
                        self.video_dts.append(packet.dts)
                        for frame in packet.decode():
                            assert isinstance(frame, av.VideoFrame)
                            info = decode_strip(frame)
                            if info is not None:
                                self.frame_numbers.append(info.frame_number)
                    elif packet.stream.type == "audio":
                        self.audio_dts.append(packet.dts)
                        self.audio_frames += len(packet.decode())
                    if time.monotonic() > end:
                        break
        except av.FFmpegError as exc:
            if not self.video_dts:
                self.error = exc
        except BaseException as exc:
            self.error = exc


async def test_push_10s_from_sim_camera_and_mic_and_pull_it_back(
        tmp_path: Path, rtmp_server: RtmpServer) -> None:
    events = Events()
    media = make_service(tmp_path, events)
    url = rtmp_server.url("edge")
    try:
        status = await asyncio.wait_for(media.start_stream(url), 10)
        assert status["streaming"] and status["url"] == redact_url(url)
        assert "edge" not in status["url"]  # the stream key is never reported
        await events.wait_for("stream-started", timeout=10)
        pushed_from = time.monotonic()
        puller = Puller(url, seconds=7.0)
        puller.start()
        await asyncio.sleep(10.0 - (time.monotonic() - pushed_from))
        live = media.status()["stream"]
        assert live["state"] == "live" and live["bitrate_kbps"] > 100
        await asyncio.wait_for(media.stop_stream(), 10)
        pushed = time.monotonic() - pushed_from
        await asyncio.to_thread(puller.join, 15)
    finally:
        await asyncio.wait_for(media.close(), 10)

    assert events.named("stream-stopped") == [{"reason": "requested"}]
    # pulled live from the server while pushing
    assert puller.error is None, puller.error
    assert puller.codecs == {"video": "h264", "audio": "aac"}
    assert len(puller.frame_numbers) > FPS
    assert is_increasing(puller.frame_numbers)
    assert is_increasing(puller.video_dts) and is_increasing(puller.audio_dts)
    assert puller.audio_frames > 100

    # the server's own copy of the whole push
    rtmp_server.stop()
    [flv] = rtmp_server.recordings()
    got = probe(flv)
    assert got["errors"] == []
    assert (got["video_codec"], got["audio_codec"]) == ("h264", "aac")
    assert got["profile"] == "Constrained Baseline"
    duration = got["video_times"][-1] - got["video_times"][0] + 1 / FPS
    assert abs(duration - pushed) < 0.5, (duration, pushed)
    assert 9.5 < duration < 10.5
    assert abs(got["audio_samples"] / 48_000 - duration) < 0.3
    assert is_increasing(got["video_times"]) and is_increasing(got["audio_times"])
    numbers = got["frame_numbers"]
    assert got["unreadable_strips"] == 0  # starts on a keyframe, nothing undecodable
    assert is_increasing(numbers) and numbers[0] < FPS and numbers[-1] > 9 * FPS
    # everything pushed arrived: one decodable frame per video packet the server accepted
    # (a camera frame skipped on a busy machine is never encoded, so never pushed)
    assert len(numbers) == media.streamer.video_packets_sent
    # encoded once for the stream: every camera frame exactly once
    enc = media.video
    assert SharedVideoEncoder.created == 1
    assert enc.frames_unused <= 2  # read while no output was attached (start, stop)
    assert (enc.frames_encoded + enc.frames_unused + enc.budget.frames_skipped
            == enc.camera_totals["delivered"] >= len(numbers))
    assert enc.duplicate_frames == 0


async def test_streaming_resumes_after_the_server_restarts(
        tmp_path: Path, rtmp_server: RtmpServer) -> None:
    events = Events()
    media = make_service(tmp_path, events, stream_bitrate_kbps=900)
    try:
        await asyncio.wait_for(media.start_stream(rtmp_server.url()), 10)
        await events.wait_for("stream-started", timeout=10)
        assert media.video.bitrate_kbps == 900  # stream.video_bitrate_kbps while streaming
        await asyncio.sleep(1.5)
        rtmp_server.kill()
        reconnecting: dict[str, Any] = await events.wait_for("stream-reconnecting",
                                                             timeout=15)
        assert reconnecting["attempt"] == 1
        assert media.status()["stream"]["state"] in ("reconnecting", "connecting")
        await asyncio.sleep(1.0)  # a few refused attempts while the server is down
        await asyncio.to_thread(rtmp_server.start)
        await events.wait_for("stream-started", count=2, timeout=20)
        for _ in range(200):  # about two seconds of video over the new connection
            if media.streamer.connection_video_packets >= 2 * FPS:
                break
            await asyncio.sleep(0.1)
        sent_again = media.streamer.connection_video_packets
        status = media.status()["stream"]
        assert status["state"] == "live" and status["connects"] == 2
        assert status["reconnects"] >= 1
        await asyncio.wait_for(media.stop_stream(), 10)
        assert media.video.bitrate_kbps == 600  # back to video.bitrate_kbps
    finally:
        await asyncio.wait_for(media.close(), 10)
    rtmp_server.stop()
    recordings = rtmp_server.recordings()
    assert len(recordings) >= 2, recordings
    resumed = probe(recordings[-1])
    assert (resumed["video_codec"], resumed["audio_codec"]) == ("h264", "aac")
    assert resumed["unreadable_strips"] == 0  # resumed at a keyframe
    assert len(resumed["frame_numbers"]) >= sent_again >= 2 * FPS
    assert is_increasing(resumed["frame_numbers"])
    assert SharedVideoEncoder.created == 1  # the same encoder went on running


#: A server that takes TCP connections and never says a word; each connection is
#: dropped after five seconds. It runs in its own process, so nothing in this one can
#: stop it, or be stopped by it.
SILENT_SERVER = """
import socket, sys, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    threading.Timer(5.0, conn.close).start()
"""


async def test_a_server_that_never_answers_stops_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The RTMP connect and handshake block in FFmpeg. They must block only the stream's
    own thread: the event loop (the room, the page, the buttons) goes on, the connect
    gives up after the write timeout, and stop ends a connect in progress at once."""
    monkeypatch.setattr(rtmp, "WRITE_TIMEOUT", 1.5)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SILENT_SERVER, stdout=asyncio.subprocess.PIPE)
    assert server.stdout is not None
    port = int(await asyncio.wait_for(server.stdout.readline(), 10))
    events = Events()
    media = make_service(tmp_path, events)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.wait_for(media.start_stream(f"rtmp://127.0.0.1:{port}/live/key"), 10)
        first = await events.wait_for("stream-reconnecting", timeout=15)
        assert "no answer for 1.5 s" in first["error"]
        await events.wait_for("stream-reconnecting", count=2, timeout=15)
        assert media.status()["stream"]["state"] in ("reconnecting", "connecting")
        for _ in range(1000):  # the third attempt, in progress
            if media.streamer.state == "connecting":
                break
            await asyncio.sleep(0.01)
        assert media.streamer.state == "connecting"
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await asyncio.wait_for(media.stop_stream(), 10)
        stopping = time.monotonic() - started
        for _ in range(100):  # the writer thread ends with the aborted connect
            if not any(t.name.startswith("rtmp") for t in threading.enumerate()):
                break
            await asyncio.sleep(0.05)
        left = [t.name for t in threading.enumerate() if t.name.startswith("rtmp")]
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await asyncio.wait_for(media.close(), 10)
        server.kill()
        await server.wait()
    assert media.status()["stream"]["state"] == "idle"
    assert events.named("stream-started") == []
    # the loop went on all along: FFmpeg held the GIL for the whole connect before (the
    # loop then stopped for the 5 s the server held the connection; the bound is loose)
    assert max(gaps) < 2.5, max(gaps)
    assert stopping < 2.5, stopping  # stop does not wait for the connect
    assert left == [], left

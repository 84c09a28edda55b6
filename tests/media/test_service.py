"""The media service as the appliance uses it: actions without a room, the camera's life."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import av

from device.actions import Dispatcher
from services.media.encoder import SharedVideoEncoder

from .conftest import RtmpServer, probe
from .helpers import Events, make_service


async def test_record_and_stream_actions_work_without_a_room(
        tmp_path: Path, rtmp_server: RtmpServer) -> None:
    events = Events()
    media = make_service(tmp_path, events)
    dispatcher = Dispatcher(None, media=media, emit=events,
                            default_stream_url=lambda: rtmp_server.url("box"))
    try:
        rec = await asyncio.wait_for(dispatcher.dispatch("record", {"state": "start"}), 10)
        assert rec["recording"] is True
        live = await asyncio.wait_for(dispatcher.dispatch("stream", {"state": "start"}), 10)
        assert live["streaming"] is True and live["url"].endswith("/live/***")
        await events.wait_for("stream-started", timeout=10)
        await asyncio.sleep(2.0)
        status = media.status()
        assert status["recording"]["recording"] and status["stream"]["state"] == "live"
        assert status["encoder"]["subscribers"] == 2 and SharedVideoEncoder.running == 1
        await asyncio.wait_for(dispatcher.dispatch("stream", {"state": "stop"}), 10)
        assert media.video.is_running  # still recording
        await asyncio.wait_for(dispatcher.dispatch("record", {"state": "stop"}), 10)
        await asyncio.sleep(0.1)
        assert not media.video.is_running  # nothing uses the camera any more
    finally:
        await asyncio.wait_for(media.close(), 10)
        await dispatcher.close()
    actions = [d["action"] for d in events.named("action")]
    assert actions == ["record", "stream", "stream", "record"]
    [segment] = events.named("recording-segment")
    got = probe(tmp_path / "recordings" / segment["file"])
    assert got["errors"] == [] and got["frame_numbers"]


async def test_switching_the_room_video_off_closes_the_camera(tmp_path: Path) -> None:
    events = Events()
    media = make_service(tmp_path, events)
    try:
        track = media.video_track(codec="h264")
        packet = await asyncio.wait_for(track.recv(), 10)
        assert isinstance(packet, av.Packet) and packet.is_keyframe
        assert media.video.is_running
        track.stop()  # what the room does when video is switched off
        for _ in range(50):
            if not media.video.is_running:
                break
            await asyncio.sleep(0.05)
        assert not media.video.is_running
        # with a recording on, the camera stays open for it
        await asyncio.wait_for(media.start_recording(), 10)
        again = media.video_track(codec="vp8")
        await asyncio.wait_for(again.recv(), 10)
        again.stop()
        await asyncio.sleep(0.3)
        assert media.video.is_running
        await asyncio.wait_for(media.stop_recording(), 10)
        await asyncio.sleep(0.1)
        assert not media.video.is_running
    finally:
        await asyncio.wait_for(media.close(), 10)
    assert SharedVideoEncoder.created == 1


async def test_saved_config_changes_reach_the_service_through_its_settings(
        tmp_path: Path) -> None:
    """What ``device/settings.py`` builds is asked for again: a changed ``[record]``,
    ``[stream]`` or ``[video]`` key applies at the next recording, and the camera and mic
    open as the config is when they open."""
    from device import settings
    from device.config import Config
    from services.media.service import MediaService

    config = Config()
    media = MediaService.from_settings(lambda: settings.media(config), tmp_path, sim=True)
    try:
        rec = media.recorder
        assert (rec.directory, rec.fmt, rec.segment_seconds) == (tmp_path / "recordings",
                                                                 "mkv", 300)
        assert media.video.max_bitrate_kbps == 1000 and media.video.gop_seconds == 2.0
        assert media._default_url() is None
        config = config.replace({
            "record": {"directory": "/srv/rec", "format": "mp4", "segment_seconds": 60,
                       "max_total_mb": 100, "min_free_mb": 50},
            "stream": {"rtmp_url": "rtmp://127.0.0.1/live/key", "video_bitrate_kbps": 900},
            "video": {"bitrate_kbps": 700, "gop_seconds": 1.0, "width": 320, "height": 240},
            "room": {"room": 77},
            "sim": {"mic": "silence"},
        })
        media.apply_config()  # what starting a recording or a stream does first
        assert (rec.directory, rec.fmt, rec.segment_seconds) == (Path("/srv/rec"), "mp4", 60)
        assert (rec.max_total_mb, rec.min_free_mb) == (100, 50)
        assert media.video.max_bitrate_kbps == 700 and media.video.gop_seconds == 1.0
        assert media.stream_bitrate_kbps == 900
        assert media._default_url() == "rtmp://127.0.0.1/live/key"
        assert rec._label() == "room77"
        camera = media.video.camera_factory()
        assert (camera.width, camera.height) == (320, 240)
        assert media.mic is not None
        assert "<SimMic 'silence'" in repr(media.mic.source_factory())
    finally:
        await asyncio.wait_for(media.close(), 10)


async def test_the_mic_meter_follows_the_mics_frames_and_sleeps_while_it_is_closed(
        tmp_path: Path) -> None:
    """``mic-level`` five times a second while the mic is open, from its frames; one
    ``None`` when it closes; nothing at all while it is closed (no timer of its own)."""
    events = Events()
    media = make_service(tmp_path, events)
    assert media.mic is not None
    try:
        await asyncio.sleep(0.5)
        assert events.named("mic-level") == []  # closed: no timer runs for the meter
        await asyncio.wait_for(media.mic.acquire("page-meter:1"), 10)
        await asyncio.sleep(1.1)
        levels = [e for t, n, e in events.items if n == "mic-level"]
        assert 4 <= len(levels) <= 7, levels  # every 0.2 s
        assert all(d["level_dbfs"] is not None and -12 < d["level_dbfs"] < 0 for d in levels)
        times = [t for t, n, _ in events.items if n == "mic-level"]
        assert min(b - a for a, b in itertools.pairwise(times)) >= 0.18
        await asyncio.wait_for(media.mic.release("page-meter:1"), 10)
        assert events.named("mic-level")[-1] == {"level_dbfs": None}  # at once
        count = len(events.named("mic-level"))
        await asyncio.sleep(0.5)
        assert len(events.named("mic-level")) == count
    finally:
        await asyncio.wait_for(media.close(), 10)

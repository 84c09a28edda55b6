"""Local recording: durations, segments, a power cut, rotation and the free-disk guard."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.media.encoder import SharedVideoEncoder
from services.media.recorder import segment_name

from .conftest import is_increasing, probe
from .helpers import FPS, Events, make_service

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["mkv", "mp4"])
async def test_recording_decodes_to_the_end_and_lasts_the_wall_time(
        tmp_path: Path, fmt: str) -> None:
    events = Events()
    media = make_service(tmp_path, events, record_format=fmt)
    try:
        started = time.monotonic()
        status = await asyncio.wait_for(media.start_recording(), 10)
        assert status["recording"] and status["format"] == fmt
        await asyncio.sleep(6.0)
        wall = time.monotonic() - started  # from the start request to the stop request
        await asyncio.wait_for(media.stop_recording(), 10)
    finally:
        await asyncio.wait_for(media.close(), 10)
    assert not media.video.is_running  # the camera closed once nothing used it
    [started_event] = events.named("recording-started")
    [segment] = events.named("recording-segment")
    assert events.named("recording-stopped")[0]["reason"] == "requested"
    path = tmp_path / "recordings" / segment["file"]
    assert path.name == started_event["file"]
    assert path.name.startswith("room1234-") and path.suffix == f".{fmt}"
    got = probe(path)
    assert got["errors"] == []
    assert (got["video_codec"], got["audio_codec"]) == ("h264", "aac")
    duration = got["video_times"][-1] - got["video_times"][0] + 1 / FPS
    assert abs(duration - wall) <= 0.02 * wall, (duration, wall)
    assert abs(got["audio_samples"] / 48_000 - duration) <= 0.02 * wall
    assert got["unreadable_strips"] == 0 and is_increasing(got["frame_numbers"])
    assert is_increasing(got["video_times"]) and is_increasing(got["audio_times"])
    assert SharedVideoEncoder.created == 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mkv", "mp4"])
def test_sigkill_mid_segment_leaves_finished_segments_playable(tmp_path: Path,
                                                                fmt: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.media.record_child", str(tmp_path), fmt, "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while len(finished) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event["event"] == "recording-segment":
                finished.append(event["file"])
        if len(finished) < 2 and proc.poll() is not None and proc.stderr is not None:
            pytest.fail(f"the recorder exited: {proc.stderr.read()}")
        assert len(finished) == 2
        time.sleep(1.0)  # halfway into the third segment
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    files = sorted(p.name for p in tmp_path.glob(f"*.{fmt}"))
    assert set(finished) < set(files)  # plus the one cut short
    last_number = -1
    for name in finished:
        got = probe(tmp_path / name)
        assert got["errors"] == [], name
        assert (got["video_codec"], got["audio_codec"]) == ("h264", "aac")
        assert got["unreadable_strips"] == 0  # starts on a keyframe
        numbers = got["frame_numbers"]
        assert is_increasing(numbers) and numbers[0] > last_number
        last_number = numbers[-1]
        duration = got["video_times"][-1] - got["video_times"][0] + 1 / FPS
        # ends at the first keyframe past 2 s (later when a busy machine skips frames)
        assert 1.9 < duration < 2.5, (name, duration)


async def test_oldest_recordings_go_when_the_total_passes_the_limit(tmp_path: Path) -> None:
    directory = tmp_path / "recordings"
    directory.mkdir()
    old = []
    for day in range(3):  # 1.2 MB of older recordings, oldest first
        path = directory / f"room1234-2020010{day + 1}T000000Z.mkv"
        path.write_bytes(b"\0" * 400_000)
        os.utime(path, (1_577_836_800 + day * 86400,) * 2)
        old.append(path)
    keep = directory / "notes.txt"
    keep.write_text("not a recording")
    events = Events()
    media = make_service(tmp_path, events, max_total_mb=1, segment_seconds=2)
    try:
        await asyncio.wait_for(media.start_recording(), 10)
        await events.wait_for("recording-segment", count=1, timeout=15)
        await asyncio.sleep(0.5)
        await asyncio.wait_for(media.stop_recording(), 10)
    finally:
        await asyncio.wait_for(media.close(), 10)
    deleted = [e["file"] for e in events.named("recording-deleted")]
    assert deleted[:1] == [old[0].name]  # oldest first
    assert not old[0].exists() and keep.exists()
    recordings = [p for p in directory.iterdir() if p.suffix in (".mkv", ".mp4")]
    newest = max(recordings, key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in recordings if p != newest)
    assert total <= 1024 * 1024
    for name in media.recorder.status()["files"]:
        assert (directory / name).exists() or name in deleted


async def test_recording_refuses_to_start_when_the_disk_is_short(tmp_path: Path) -> None:
    events = Events()
    media = make_service(tmp_path, events, min_free_mb=10_000_000)
    try:
        status = await asyncio.wait_for(media.start_recording(), 10)
        assert status["recording"] is False and "min_free_mb" in status["error"]
        assert events.named("recording-stopped") == [{"reason": "disk-full", "files": []}]
        await asyncio.sleep(0.2)
        assert not media.video.is_running  # nothing left using the camera
    finally:
        await asyncio.wait_for(media.close(), 10)


async def test_recording_stops_by_itself_when_free_space_runs_short(tmp_path: Path) -> None:
    events = Events()
    media = make_service(tmp_path, events)
    try:
        await asyncio.wait_for(media.start_recording(), 10)
        await events.wait_for("recording-started", timeout=10)
        media.recorder.min_free_mb = 10_000_000  # as if the disk had filled up
        stopped = await events.wait_for("recording-stopped", timeout=10)
        assert stopped["reason"] == "disk-full" and len(stopped["files"]) == 1
        assert media.recorder.status()["recording"] is False
        await asyncio.sleep(0.3)
        assert not media.video.is_running
        got = probe(tmp_path / "recordings" / stopped["files"][0])
        assert got["errors"] == [] and got["frame_numbers"]
    finally:
        await asyncio.wait_for(media.close(), 10)


def test_segment_names_carry_room_and_utc_time() -> None:
    import datetime as dt

    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    assert segment_name("room1234", when, "mkv") == "room1234-20260304T050607Z.mkv"
    assert segment_name("../we ird/", when, "mp4") == "we_ird-20260304T050607Z.mp4"

"""The shared encoder, its subscriptions, the mic tee and the room track's RTCP hooks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpPsfbPacket, pack_remb_fci

from drivers.audio.sim import SimMic
from drivers.camera.sim import SimCamera
from drivers.camera.strip import decode_strip
from services.media.audio import MicTee
from services.media.audio_encoder import SharedAudioEncoder
from services.media.codec_options import x264_options, x264_threads
from services.media.encoder import SharedVideoEncoder
from services.media.packets import EncodedPacket, PacketSubscription
from services.media.track import EncodedVideoTrack

from .helpers import FPS, HEIGHT, WIDTH


def _encoder(**kwargs: object) -> SharedVideoEncoder:
    options: dict[str, object] = {"encoder": "libx264", "bitrate_kbps": 1000}
    options.update(kwargs)
    return SharedVideoEncoder(lambda: SimCamera(WIDTH, HEIGHT, FPS), **options)  # type: ignore[arg-type]


async def _collect(sub: PacketSubscription, count: int) -> list[EncodedPacket]:
    return [await asyncio.wait_for(sub.get(), 5) for _ in range(count)]


async def test_auto_falls_back_to_libx264_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services.media.codecs")
    enc = _encoder(encoder="auto")
    sub = enc.subscribe("test")
    await enc.start()
    try:
        [first] = await _collect(sub, 1)
    finally:
        await enc.stop()
    assert enc.codec_name == "libx264" and first.keyframe
    assert any("hardware encoder unavailable" in r.getMessage() for r in caplog.records)
    # Annex-B with SPS (type 7) and PPS (type 8) ahead of the IDR slice, constrained
    # baseline (profile_idc 66, constraint_set1): what WebRTC receivers accept
    assert first.data.startswith(b"\x00\x00\x00\x01\x67\x42\xc0")
    assert b"\x00\x00\x01\x68" in first.data and first.time_base == Fraction(1, 90_000)


async def test_gop_is_bounded_and_a_keyframe_comes_on_request() -> None:
    enc = _encoder(gop_seconds=0.5)
    sub = enc.subscribe("test", maxsize=200)
    await enc.start()
    try:
        packets = await _collect(sub, 40)
        await asyncio.sleep(0.3)  # past the merge window of forced keyframes
        sub.drain()
        asked_at = time.monotonic()
        enc.request_keyframe("test")
        after = await _collect(sub, 3)
    finally:
        await enc.stop()
    keys = [i for i, p in enumerate(packets) if p.keyframe]
    assert keys[0] == 0 and all(b - a <= 15 for a, b in itertools.pairwise(keys))
    # the next frame encoded is a keyframe: the first one captured after the request,
    # or one captured just before it whose encoding started after it
    first_after = next(i for i, p in enumerate(after) if p.captured_at > asked_at)
    assert any(p.keyframe for p in after[:first_after + 1])
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    # packets decode back to the camera's frames, in order
    codec = av.CodecContext.create("h264", "r")
    numbers = []
    for p in packets:
        for frame in codec.decode(av.Packet(p.data)):
            info = decode_strip(frame)
            assert info is not None
            numbers.append(info.frame_number)
    assert numbers == [p.index for p in packets][:len(numbers)] and len(numbers) >= 38


async def test_bitrate_changes_while_running_and_stays_under_the_cap() -> None:
    enc = _encoder(bitrate_kbps=1200)
    sub = enc.subscribe("test", maxsize=500)
    await enc.start()
    try:
        high = await _collect(sub, 90)
        assert enc.set_bitrate(5000) == 1200  # capped by the configured bitrate
        assert enc.set_bitrate(150) == 150
        await _collect(sub, 45)  # the rate control drains its buffer first
        low = await _collect(sub, 45)
    finally:
        await enc.stop()
    per_frame_high = sum(len(p.data) for p in high[15:]) / 75
    per_frame_low = sum(len(p.data) for p in low) / 45
    assert per_frame_low < per_frame_high / 2, (per_frame_low, per_frame_high)
    assert per_frame_low * 8 * FPS / 1000 < 150 * 1.5  # near the new target (kbps)
    assert enc.codec_opens == 1  # changed in place, no new encoder


def _packet(kind: str, keyframe: bool, n: int) -> EncodedPacket:
    return EncodedPacket(kind, b"x", n, Fraction(1, 90_000), keyframe, float(n), n)  # type: ignore[arg-type]


def test_a_subscriber_that_drops_waits_for_the_next_keyframe() -> None:
    asked: list[str] = []
    sub = PacketSubscription("slow", 4, asked.append)
    sub.put(_packet("video", False, 0))  # before any keyframe: useless
    assert len(sub) == 0 and sub.waiting_keyframe
    sub.put(_packet("video", True, 1))
    for n in range(2, 5):
        sub.put(_packet("video", False, n))
    assert [p.pts for p in sub.drain()] == [1, 2, 3, 4]
    for n in range(5, 9):
        sub.put(_packet("video", n == 5, n))
    sub.put(_packet("audio", True, 9))  # full: drops video 5, the P frames are useless now
    assert sub.dropped == 1 and sub.waiting_keyframe and asked
    sub.put(_packet("video", False, 10))  # still waiting
    sub.put(_packet("video", True, 11))
    assert [(p.kind, p.pts) for p in sub.drain()] == [("audio", 9), ("video", 11)]
    assert not sub.waiting_keyframe


async def test_mic_tee_gives_each_branch_every_frame(tmp_path: Path) -> None:
    mics: list[SimMic] = []

    def open_mic() -> SimMic:
        mics.append(SimMic("tone:440", state_dir=tmp_path))
        return mics[-1]

    tee = MicTee(open_mic)
    room, outputs = tee.branch("room"), tee.branch("outputs")
    await room.start()
    await outputs.start()
    a = [await asyncio.wait_for(room.read(), 2) for _ in range(10)]
    b = [await asyncio.wait_for(outputs.read(), 2) for _ in range(10)]
    assert [f.index for f in a] == [f.index for f in b] and len(mics) == 1
    await outputs.stop()
    await asyncio.wait_for(room.read(), 2)  # the other branch goes on
    await room.stop()
    with pytest.raises(EOFError):
        await asyncio.wait_for(room.read(), 2)
    assert tee._source is None  # the mic closed with its last branch
    await tee.close()


async def test_aac_encoder_follows_the_mic_clock(tmp_path: Path) -> None:
    tee = MicTee(lambda: SimMic("tone:440", state_dir=tmp_path))
    aac = SharedAudioEncoder(tee.branch("outputs"))
    sub = PacketSubscription("test", 100, kinds=("audio",))
    aac.attach(sub)
    await aac.start()
    try:
        packets = [await asyncio.wait_for(sub.get(), 3) for _ in range(20)]
    finally:
        await aac.stop()
        await tee.close()
    times = [p.captured_at for p in packets]
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(s - 1024 / 48_000) < 1e-6 for s in steps)  # 1024-sample AAC frames
    assert aac.extradata  # the AudioSpecificConfig muxers need


class _Transport:
    state = "connected"


async def test_pli_and_remb_from_the_room_reach_the_shared_encoder() -> None:
    enc = _encoder(bitrate_kbps=1500)
    track = EncodedVideoTrack(enc, codec="h264")
    sender = RTCRtpSender(track, _Transport())  # type: ignore[arg-type]
    before = enc.keyframe_requests
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=sender._ssrc))
    assert track.keyframe_requests == 1 and enc.keyframe_requests == before + 1
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=sender._ssrc))
    assert track.keyframe_requests == 2
    remb = pack_remb_fci(400_000, [sender._ssrc])
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=remb))
    assert enc.bitrate_kbps == 400
    other = pack_remb_fci(100_000, [sender._ssrc + 1])  # for another stream: ignored
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=other))
    assert enc.bitrate_kbps == 400
    track.stop()
    assert enc.subscribers == 0


def test_x264_runs_on_one_thread_up_to_vga_and_slices_above() -> None:
    """Up to 640x480 x264 encodes on its caller's thread (its slice threads cost CPU and
    save nothing there); larger frames keep x264's own threads."""
    assert x264_threads(640, 480) == 1 and x264_threads(320, 240) == 1
    assert x264_threads(1280, 720) == 0
    for (width, height), more_threads in (((640, 480), False), ((1280, 720), True)):
        tasks = set(os.listdir("/proc/self/task"))
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 90_000)
        ctx.options = x264_options(60, 1000, threads=x264_threads(width, height))
        ctx.open()
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.pts = 0
        frame.time_base = ctx.time_base
        ctx.encode(frame)
        started = set(os.listdir("/proc/self/task")) - tasks
        del ctx
        assert bool(started) == more_threads, (width, height, started)

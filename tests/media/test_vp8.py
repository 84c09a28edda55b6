"""The VP8 encode of the shared encoder: real-time libvpx, bitrate, keyframes, RTCP from the
room, and what aiortc's VP8 packetizer makes of its packets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpPsfbPacket, pack_remb_fci

from drivers.camera.base import CapturedFrame
from drivers.camera.sim import PatternRenderer, SimCamera
from drivers.camera.strip import decode_strip
from services.media import codec_options, codecs
from services.media.encoder import SharedVideoEncoder
from services.media.packets import EncodedPacket, PacketSubscription
from services.media.track import EncodedVideoTrack
from tests.harness.appliance import REPO
from tests.harness.unit_env import unit_environment

from .helpers import FPS, HEIGHT, WIDTH


def _encoder(**kwargs: object) -> SharedVideoEncoder:
    options: dict[str, object] = {"encoder": "libx264", "bitrate_kbps": 600}
    options.update(kwargs)
    return SharedVideoEncoder(lambda: SimCamera(WIDTH, HEIGHT, FPS), **options)  # type: ignore[arg-type]


async def _collect(sub: PacketSubscription, count: int) -> list[EncodedPacket]:
    return [await asyncio.wait_for(sub.get(), 5) for _ in range(count)]


def _is_vp8_keyframe(data: bytes) -> bool:
    # VP8 frame tag: bit 0 of the first byte is 0 for a key frame, then the start code
    return not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"


async def test_vp8_packets_decode_in_order_and_keyframes_come_on_request() -> None:
    enc = _encoder(gop_seconds=10.0)
    sub = enc.subscribe("room", maxsize=200, codec="vp8")
    await enc.start()
    try:
        packets = await _collect(sub, 20)
        enc.request_keyframe("test", codec="vp8")
        packets += await _collect(sub, 10)
    finally:
        await enc.stop()
    assert enc.encode_of("vp8").implementation == "libvpx"
    assert all(p.codec == "vp8" and p.kind == "video" for p in packets)
    assert packets[0].keyframe and _is_vp8_keyframe(packets[0].data)
    # one shown frame per packet (no alt-ref, no look-ahead): pts == dts increasing
    assert [p.pts for p in packets] == sorted(p.pts for p in packets)
    assert sum(p.keyframe for p in packets[20:]) == 1, "a keyframe on request"
    assert all(p.keyframe == _is_vp8_keyframe(p.data) for p in packets)
    decoder = av.CodecContext.create("libvpx", "r")
    numbers = []
    for p in packets:
        for frame in decoder.decode(av.Packet(p.data)):
            info = decode_strip(frame)
            assert info is not None
            numbers.append(info.frame_number)
    assert numbers == [p.index for p in packets]
    # nothing else was encoded: H.264 had no subscriber
    assert enc.encode_of("h264").frames_encoded == 0 and enc.codec_name is None


async def test_vp8_honours_its_bitrate_and_reopens_for_a_new_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "REOPEN_INTERVAL", 0.5)
    # below what the sim pattern would take, so that the rate control is what limits it
    enc = _encoder(bitrate_kbps=250)
    sub = enc.subscribe("room", maxsize=500, codec="vp8")
    vp8 = enc.encode_of("vp8")
    await enc.start()
    try:
        first = await _collect(sub, FPS * 3)
        assert enc.set_bitrate(150, codec="vp8") == 150
        assert enc.bitrate_kbps == 250  # H.264's is its own
        await _collect(sub, FPS)  # the reopen (and its keyframe) happen in here
        second = await _collect(sub, FPS * 3)
    finally:
        await enc.stop()

    def kbps(packets: list[EncodedPacket]) -> float:
        seconds = (packets[-1].pts - packets[0].pts) / 90_000
        return sum(len(p.data) for p in packets[1:]) * 8 / seconds / 1000

    assert 0.6 * 250 < kbps(first) < 1.25 * 250, kbps(first)
    assert 0.5 * 150 < kbps(second) < 1.25 * 150, kbps(second)
    assert kbps(second) < kbps(first)
    assert vp8.codec_opens == 2  # libvpx takes a new bitrate only when reopened


class _Transport:
    state = "connected"


async def test_pli_and_remb_reach_the_vp8_encode_only() -> None:
    enc = _encoder(bitrate_kbps=1500)
    track = EncodedVideoTrack(enc, codec="vp8")
    sender = RTCRtpSender(track, _Transport())  # type: ignore[arg-type]
    vp8, h264 = enc.encode_of("vp8"), enc.encode_of("h264")
    before = vp8.keyframe_requests
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=sender._ssrc))
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=sender._ssrc))
    assert track.keyframe_requests == 2 and vp8.keyframe_requests == before + 2
    assert h264.keyframe_requests == 0
    remb = pack_remb_fci(400_000, [sender._ssrc])
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=remb))
    assert vp8.bitrate_kbps == 400 and h264.bitrate_kbps == 1500
    track.stop()
    assert enc.subscribers == 0


async def test_the_track_sends_only_its_codec_and_aiortc_packetizes_vp8(
        tmp_path: Path) -> None:
    enc = _encoder()
    track = EncodedVideoTrack(enc)  # codec not known yet: it waits
    await enc.start()
    try:
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.3)
        assert not pending.done() and enc.subscribers == 0
        track.set_codec("h264")
        first = await asyncio.wait_for(pending, 5)
        assert bytes(first).startswith(b"\x00\x00\x00\x01")  # Annex-B H.264
        track.set_codec("vp8")  # renegotiated: from now on VP8 only
        assert enc.active_codecs == ["vp8"]
        with pytest.raises(ValueError):
            track.set_codec("vp9")
        packets = [await asyncio.wait_for(track.recv(), 5) for _ in range(15)]
    finally:
        track.stop()
        await enc.stop()
    assert track.refused == 0
    # aiortc's VP8 packetizer: payload descriptors in front, the frame split to fit MTU
    packer, decoder = Vp8Encoder(), av.CodecContext.create("libvpx", "r")
    numbers = []
    for packet in packets:
        payloads, timestamp = packer.pack(packet)
        assert timestamp == packet.pts and all(len(p) <= 1300 for p in payloads)
        frame = b"".join(vp8_depayload(p) for p in payloads)
        assert frame == bytes(packet)
        for picture in decoder.decode(av.Packet(frame)):
            info = decode_strip(picture)
            assert info is not None
            numbers.append(info.frame_number)
    assert _is_vp8_keyframe(bytes(packets[0])) and len(numbers) == 15
    assert numbers == sorted(numbers)


def _vp8_child(out: Path, *more: str) -> dict[str, object]:
    """:mod:`tests.media.vp8_memory_child` with the unit's environment (its fixed malloc
    thresholds among it), as the device runs the encode."""
    out.mkdir()
    env = {**os.environ, **unit_environment(out / "run")}
    got = subprocess.run([sys.executable, "-m", "tests.media.vp8_memory_child", str(out),
                          *more], capture_output=True, text=True, timeout=120, env=env,
                         cwd=REPO, check=True)
    result: dict[str, object] = json.loads(got.stdout.strip().splitlines()[-1])
    return result


def _decoded_numbers(out: Path) -> list[int]:
    decoder = av.CodecContext.create("libvpx", "r")
    numbers = []
    for path in sorted(out.glob("*.vp8")):
        for frame in decoder.decode(av.Packet(path.read_bytes())):
            info = decode_strip(frame)
            assert info is not None, f"{path.name}: no frame-number strip in the picture"
            numbers.append(info.frame_number)
    return numbers


def test_libvpx_zeroed_token_buffer_is_given_back_at_every_open(tmp_path: Path) -> None:
    """libvpx zeroes a worst-case token buffer (7.4 MB at 640x480) at each open; the
    encoder gives its pages back, so only what frames write stays resident, and the
    stream is the same picture for picture: every frame decodes with its number."""
    given = _vp8_child(tmp_path / "given")
    kept = _vp8_child(tmp_path / "kept", "keep")
    token = given["token_bytes"]
    assert isinstance(token, int) and token == 40 * 30 * 24 * 16 * 16
    assert given["opens"] == kept["opens"] == 3, "each bitrate change reopens libvpx"
    # three times: glibc's own threshold would have put the third in the heap
    assert given["given_back"] >= 3 * (token - 2 * 4096) * 0.99, given  # type: ignore[operator]
    assert kept["given_back"] == 0
    for stage, (mine, reference) in enumerate(zip(given["anon_growth"],  # type: ignore[call-overload]
                                                  kept["anon_growth"], strict=True)):
        assert reference - mine >= 4_000_000, (stage, given, kept)
    for run in ("given", "kept"):
        assert _decoded_numbers(tmp_path / run) == list(range(180)), run


@pytest.mark.parametrize(("width", "height", "cores", "machine", "speed"), [
    (640, 480, 4, "aarch64", -10), (320, 240, 4, "aarch64", -8),
    (1280, 720, 4, "aarch64", -12), (640, 480, 2, "armv7l", -12),
    (640, 480, 2, "x86_64", -6), (320, 240, 8, "x86_64", -4)])
def test_vp8_speed_is_fixed_as_libwebrtc_sets_it(width: int, height: int, cores: int,
                                                 machine: str, speed: int) -> None:
    """A positive cpu-used lets libvpx slow itself down to fill a quarter of each frame's
    time; the box asks for a fixed speed, libwebrtc's for the CPU and size."""
    assert codec_options.vp8_cpu_used(width, height, cores, machine) == speed
    assert codec_options.vp8_options(800, speed)["cpu-used"] == str(speed)


def test_the_room_encode_opens_libvpx_at_the_fixed_speed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[int, int]] = []

    def speed(width: int, height: int) -> int:
        asked.append((width, height))
        return -7

    monkeypatch.setattr(codecs, "vp8_cpu_used", speed)
    opened: list[dict[str, str]] = []
    real = codecs.vp8_options
    monkeypatch.setattr(codecs, "vp8_options",
                        lambda kbps, cpu_used: opened.append(real(kbps, cpu_used)) or opened[-1])
    enc = codecs.CodecEncode(codecs.VP8, "t", bitrate_kbps=500, gop_seconds=2.0)
    frame = PatternRenderer(320, 240).render(0, 0.0)
    packets = enc.encode(frame, CapturedFrame(frame, 0, 0.0), 0.0, 30, to_sinks=False)
    assert packets and packets[0].keyframe
    assert asked == [(320, 240)] and opened[0]["cpu-used"] == "-7"

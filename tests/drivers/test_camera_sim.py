"""The sim camera and its frame-number strip, through real libx264 and libvpx round trips."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from drivers.camera.base import TIME_BASE, CapturedFrame, VideoSource
from drivers.camera.sim import PatternRenderer, SimCamera
from drivers.camera.strip import StripInfo, decode_strip, layout_for, stamp_ms

T = 5.0  # seconds any single await may take before the test fails


async def _read(cam: SimCamera) -> CapturedFrame:
    return await asyncio.wait_for(cam.read(), T)


def _luma(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="gray")


@pytest.mark.parametrize(("width", "height"),
                         [(640, 480), (320, 240), (1280, 720), (160, 120), (362, 242)])
def test_strip_reads_back_from_raw_frames(width: int, height: int) -> None:
    renderer = PatternRenderer(width, height)
    for number, at in [(0, 0.0), (1, 12.345), (2**32 - 1, 49.999), (123456, 4_000_000.5)]:
        frame = renderer.render(number, at)
        assert frame.format.name == "yuv420p"
        assert (frame.width, frame.height) == (width, height)
        assert decode_strip(frame) == StripInfo(number & 0xFFFFFFFF, stamp_ms(at))
        # the same from numpy: the yuv420p array, the luma plane, and RGB
        assert decode_strip(frame.to_ndarray()) == StripInfo(number, stamp_ms(at))
        assert decode_strip(_luma(frame)) == StripInfo(number, stamp_ms(at))
        assert decode_strip(frame.to_ndarray(format="rgb24")) == StripInfo(number, stamp_ms(at))


def test_strip_rejects_frames_without_it_and_damaged_ones() -> None:
    blank = av.VideoFrame(640, 480, "yuv420p")
    np.frombuffer(blank.planes[0], np.uint8)[:] = 128
    assert decode_strip(blank) is None
    assert decode_strip(np.zeros((480, 640), np.uint8)) is None
    assert decode_strip(np.zeros((100, 100), np.uint8)) is None  # too small for a strip

    luma = _luma(PatternRenderer(640, 480).render(777, 3.0))
    layout = layout_for(640, 480)
    assert layout is not None
    assert decode_strip(luma) == StripInfo(777, 3000)
    for cell in (3, 20, 60, 79):  # marker, number, stamp, crc
        damaged = luma.copy()
        row, col = divmod(cell, 40)
        ys = slice(row * layout.cell_height, (row + 1) * layout.cell_height)
        xs = slice(col * layout.cell_width, (col + 1) * layout.cell_width)
        damaged[ys, xs] = 235 if damaged[ys, xs].mean() < 128 else 16
        assert decode_strip(damaged) is None, f"flipped cell {cell} went unnoticed"


def test_background_moves_between_frames() -> None:
    renderer = PatternRenderer(640, 480)
    a, b = _luma(renderer.render(0, 0.0)), _luma(renderer.render(1, 0.0))
    top = 32
    assert not np.array_equal(a[top:], b[top:])
    assert np.array_equal(a[top:, 4:], b[top:, :-4])  # shifted by SPEED px to the left


def test_odd_or_tiny_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        SimCamera(641, 480)
    with pytest.raises(ValueError, match="fps"):
        SimCamera(640, 480, 0)
    with pytest.raises(ValueError, match="pattern"):
        SimCamera(640, 480, 30, pattern="bars")


async def _capture(cam: SimCamera, count: int) -> list[CapturedFrame]:
    return [await _read(cam) for _ in range(count)]


def _encoder(name: str, width: int, height: int, fps: int, options: dict[str, str]
             ) -> av.VideoCodecContext:
    enc = av.CodecContext.create(name, "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = TIME_BASE
    enc.framerate = Fraction(fps)
    enc.bit_rate = 1_000_000
    enc.options = options
    enc.open()
    return enc


def _round_trip(frames: list[CapturedFrame], encoder: str, decoder: str,
                options: dict[str, str]) -> list[StripInfo | None]:
    first = frames[0].frame
    enc = _encoder(encoder, first.width, first.height, 30, options)
    dec = av.CodecContext.create(decoder, "r")
    out: list[StripInfo | None] = []
    for captured in [*frames, None]:
        for packet in enc.encode(captured.frame if captured else None):
            for decoded in dec.decode(packet):
                assert (decoded.width, decoded.height) == (first.width, first.height)
                out.append(decode_strip(decoded))
    for decoded in dec.decode(None):
        out.append(decode_strip(decoded))
    return out


CODECS = [
    pytest.param("libx264", "h264", {"preset": "ultrafast", "tune": "zerolatency"}, id="h264"),
    pytest.param("libvpx", "vp8", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
                 id="vp8"),
]


@pytest.mark.parametrize(("encoder", "decoder", "options"), CODECS)
async def test_sim_frames_survive_encode_and_decode(encoder: str, decoder: str,
                                                    options: dict[str, str]) -> None:
    # a fast tick rate keeps the test short; frames are 640x480 yuv420p as on the appliance
    async with SimCamera(640, 480, 120) as cam:
        frames = await _capture(cam, 60)
    sent = [StripInfo(f.index, stamp_ms(f.captured_at)) for f in frames]
    got = await asyncio.wait_for(asyncio.to_thread(_round_trip, frames, encoder, decoder, options),
                                 60)
    assert got == sent  # every frame, in order, number and capture stamp intact


async def test_frames_carry_pts_time_base_and_capture_time() -> None:
    cam = SimCamera(320, 240, 100)
    assert isinstance(cam, VideoSource)
    await cam.start()
    frames = await _capture(cam, 5)
    await cam.stop()
    start = frames[0].captured_at - frames[0].index / 100
    for f in frames:
        assert f.frame.time_base == Fraction(1, 90000)
        assert f.frame.pts == round((f.captured_at - start) * 90000)
        assert f.captured_at <= time.monotonic()
        assert decode_strip(f.frame) == StripInfo(f.index, stamp_ms(f.captured_at))
    pts = [f.frame.pts for f in frames]
    assert pts == sorted(set(pts))


async def test_reader_that_keeps_up_is_paced_to_the_frame_rate() -> None:
    fps, count = 50, 15
    async with SimCamera(160, 120, fps) as cam:
        t0 = time.monotonic()
        frames = await _capture(cam, count)
        elapsed = time.monotonic() - t0
    indices = [f.index for f in frames]
    # never faster than the sensor ticks: frame k is not handed out before its tick
    assert elapsed >= (indices[-1] - indices[0]) / fps - 1e-3
    for f in frames:
        assert f.captured_at == pytest.approx(frames[0].captured_at
                                              + (f.index - frames[0].index) / fps)
    assert indices == sorted(set(indices))


async def test_slow_reader_gets_the_newest_frame_and_skips_are_counted() -> None:
    fps = 50
    async with SimCamera(160, 120, fps) as cam:
        first = await _read(cam)
        await asyncio.sleep(0.2)  # ten ticks pass unread
        before = time.monotonic()
        newest = await _read(cam)
        after = time.monotonic()
        stats = cam.stats
    start = first.captured_at - first.index / fps
    # the newest tick at the moment of the call (or a later one), not an old one
    assert newest.index >= math.floor((before - start) * fps) - 1
    assert newest.index - first.index >= 10
    assert newest.captured_at <= after
    assert stats["delivered"] == 2
    assert stats["captured"] == newest.index + 1
    assert stats["skipped"] == newest.index - 1  # every tick except the two returned
    assert decode_strip(newest.frame) == StripInfo(newest.index, stamp_ms(newest.captured_at))


async def test_stop_wakes_a_waiting_reader_and_later_reads_fail() -> None:
    cam = SimCamera(160, 120, 1)  # one frame a second: the second read waits
    await cam.start()
    await _read(cam)
    pending = asyncio.create_task(cam.read(), name="pending-read")
    await asyncio.sleep(0.05)
    await cam.stop()
    with pytest.raises(EOFError):
        await asyncio.wait_for(pending, T)
    with pytest.raises(EOFError):
        await _read(cam)
    await cam.stop()  # idempotent


async def test_read_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        await _read(SimCamera(160, 120, 30))


async def test_a_cancelled_read_leaves_the_camera_usable() -> None:
    async with SimCamera(160, 120, 20) as cam:
        await _read(cam)
        pending = asyncio.create_task(cam.read(), name="cancelled-read")
        await asyncio.sleep(0)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(pending, T)
        nxt = await _read(cam)
        assert nxt.index >= 1


async def test_frames_are_drawn_ahead_off_the_event_loop(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A reader that keeps up takes frames the drawing thread finished while the loop
    slept: none is drawn on the loop's thread, none twice; a reader that takes every
    other tick is followed after its first step."""
    threads: list[str] = []
    render = PatternRenderer.render

    def spy(self: PatternRenderer, number: int, captured_at: float) -> av.VideoFrame:
        threads.append(threading.current_thread().name)
        return render(self, number, captured_at)

    monkeypatch.setattr(PatternRenderer, "render", spy)
    loop_thread = threading.current_thread().name
    async with SimCamera(320, 240, 50) as cam:
        frames = await _capture(cam, 10)
        kept_up = cam.stats["redrawn"]
        every_other = []
        start = frames[-1].captured_at
        for k in range(1, 7):  # half a tick after every other tick: one skipped each time
            await asyncio.sleep(max(0.0, start + (2 * k + 0.5) / 50 - time.monotonic()))
            every_other.append(await _read(cam))
        stats = cam.stats
    assert threads and loop_thread not in threads
    assert {t.split("_")[0] for t in threads} == {"sim-camera"}
    assert kept_up == 0 and [f.index for f in frames] == list(range(10))
    steps = np.diff([f.index for f in every_other])
    assert (steps >= 2).all()
    # the first skip is a wrong guess, then the guess follows (a loaded machine may
    # skip an extra tick now and then)
    assert stats["redrawn"] <= 1 + int((steps != 2).sum())
    for f in [*frames, *every_other]:
        assert decode_strip(f.frame) == StripInfo(f.index, stamp_ms(f.captured_at))

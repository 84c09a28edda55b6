"""Camera mirror and rotation on real frames of the sim camera."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from drivers.camera.sim import SimCamera
from services.media.orient import Orientation, OrientationControl, OrientedCamera, orient_frame

T = 10.0


def quadrants(w: int = 64, h: int = 48) -> av.VideoFrame:
    """A frame whose top-left quarter is bright, the rest dark (U and V: a ramp)."""
    y = np.full((h, w), 20, np.uint8)
    y[: h // 2, : w // 2] = 230
    u = np.tile(np.arange(w // 2, dtype=np.uint8), (h // 2, 1))
    v = np.full((h // 2, w // 2), 128, np.uint8)
    return av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]),
                                      format="yuv420p")


def bright_corner(frame: av.VideoFrame) -> str:
    y = frame.to_ndarray()[: frame.height].astype(int)
    h, w = y.shape
    corners = {"top-left": y[: h // 2, : w // 2], "top-right": y[: h // 2, w // 2:],
               "bottom-left": y[h // 2:, : w // 2], "bottom-right": y[h // 2:, w // 2:]}
    return max(corners, key=lambda k: corners[k].mean())


@pytest.mark.parametrize(("mirror", "rotate", "corner", "size"), [
    (False, 0, "top-left", (64, 48)),
    (True, 0, "top-right", (64, 48)),
    (False, 90, "top-right", (48, 64)),
    (False, 180, "bottom-right", (64, 48)),
    (False, 270, "bottom-left", (48, 64)),
    (True, 90, "bottom-right", (48, 64)),
])
def test_frames_are_mirrored_then_turned_clockwise(mirror, rotate, corner, size) -> None:
    out = orient_frame(quadrants(), Orientation(mirror=mirror, rotate=rotate))
    assert (out.width, out.height) == size
    assert bright_corner(out) == corner
    # the chroma planes are turned with the picture: U's ramp runs along the new rows
    u = out.to_ndarray()[out.height: out.height + out.height // 4].reshape(
        out.height // 2, out.width // 2)
    assert u.min() == 0 and u.max() == 31


def test_a_bad_rotation_is_refused() -> None:
    with pytest.raises(ValueError, match="rotate"):
        Orientation(rotate=45)


async def test_the_oriented_camera_follows_the_control_from_the_next_frame() -> None:
    events: list[tuple[str, dict[str, object]]] = []
    control = OrientationControl(Orientation(), emit=lambda n, d: events.append((n, d)))
    camera = OrientedCamera(SimCamera(width=320, height=240, fps=15), control)
    await asyncio.wait_for(camera.start(), T)
    try:
        first = await asyncio.wait_for(camera.read(), T)
        assert (first.frame.width, first.frame.height) == (320, 240)
        control.set(rotate=90)
        assert (camera.width, camera.height) == (240, 320)
        turned = await asyncio.wait_for(camera.read(), T)
        assert (turned.frame.width, turned.frame.height) == (240, 320)
        assert turned.index > first.index
        control.set(rotate=0, mirror=True)
        mirrored = await asyncio.wait_for(camera.read(), T)
        plain = first.frame.to_ndarray()[:240]
        assert mirrored.frame.width == 320
        assert not np.array_equal(mirrored.frame.to_ndarray()[:240], plain)
    finally:
        await asyncio.wait_for(camera.stop(), T)
    assert events == [("camera-orientation", {"mirror": False, "rotate": 90}),
                      ("camera-orientation", {"mirror": True, "rotate": 0})]


async def test_the_shared_encoder_switches_cameras_and_turns_them() -> None:
    """A camera switched live and a quarter turn: the subscription goes on, with a
    keyframe at the new camera and decodable frames at the turned size."""
    from services.media.encoder import SharedVideoEncoder

    control = OrientationControl(Orientation())
    enc = SharedVideoEncoder(lambda: OrientedCamera(SimCamera(160, 120, 15), control),  # type: ignore[arg-type]
                             encoder="libx264")
    sub = enc.subscribe("room", maxsize=200)
    await asyncio.wait_for(enc.start(), T)
    try:
        before = [await asyncio.wait_for(sub.get(), T) for _ in range(5)]
        assert before[0].keyframe
        live = await asyncio.wait_for(enc.switch_camera(
            lambda: OrientedCamera(SimCamera(160, 120, 15), control)), T)  # type: ignore[arg-type]
        assert live and enc.is_running
        control.set(rotate=90)
        codec = av.CodecContext.create("h264", "r")
        # What the old camera's encode made before it stopped may still be queued: a
        # decoder that joins now starts at the new encode's first (key) frame.
        skipped = 0
        packet = await asyncio.wait_for(sub.get(), T)
        while not packet.keyframe:
            skipped += 1
            assert skipped < 8, "no keyframe at the new camera (only the periodic one)"
            packet = await asyncio.wait_for(sub.get(), T)
        sizes = set()
        for _ in range(20):
            for frame in codec.decode(av.Packet(packet.data)):
                sizes.add((frame.width, frame.height))
            packet = await asyncio.wait_for(sub.get(), T)
        assert (120, 160) in sizes, sizes
    finally:
        await asyncio.wait_for(enc.stop(), T)

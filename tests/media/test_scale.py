"""The budget's smaller frames: one libswscale context per size, the picture kept."""

from __future__ import annotations

import numpy as np

from drivers.camera.sim import PatternRenderer
from services.media.scale import FrameScaler, even


def _luma(frame: object) -> np.ndarray:
    return frame.to_ndarray()[: frame.height]  # type: ignore[attr-defined, no-any-return]


def test_frames_are_halved_with_one_context_and_keep_their_picture() -> None:
    renderer = PatternRenderer(640, 480)
    scaler = FrameScaler()
    for n in range(5):
        frame = renderer.render(n, 0.0)
        small = scaler.scaled(frame, 0.5)
        assert (small.width, small.height, small.format.name) == (320, 240, "yuv420p")
        # the same picture, smaller: the scaled luma against the full one subsampled
        full = _luma(frame)[::2, ::2].astype(np.int16)
        assert np.abs(_luma(small).astype(np.int16) - full).mean() < 12
    assert (scaler.contexts, scaler.frames) == (1, 5)


def test_a_new_size_makes_a_new_context_and_full_size_is_the_frame_itself() -> None:
    renderer = PatternRenderer(640, 480)
    scaler = FrameScaler()
    frame = renderer.render(0, 0.0)
    assert scaler.scaled(frame, 1.0) is frame
    scaler.scaled(frame, 0.5)
    quarter = scaler.scaled(frame, 0.25)
    assert (quarter.width, quarter.height) == (160, 120)
    scaler.scaled(renderer.render(1, 0.0), 0.25)
    assert scaler.contexts == 2


def test_sizes_stay_even() -> None:
    assert [even(x) for x in (0.4, 3, 213.3, 241)] == [2, 4, 214, 240]

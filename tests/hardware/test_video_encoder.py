"""H.264 on the board: the Pi 4's hardware encoder, the Pi 5's software one.

The Raspberry Pi 4 encodes with ``h264_v4l2m2m`` (the VideoCore's encoder, /dev/video11);
the Raspberry Pi 5 has none and encodes with libx264, which must keep up with 720p30.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import pytest

pytestmark = pytest.mark.hardware

MODEL_FILE = Path("/proc/device-tree/model")
MODEL = MODEL_FILE.read_text(errors="replace").rstrip("\0") if MODEL_FILE.exists() else ""
if "Raspberry Pi 4" not in MODEL and "Raspberry Pi 5" not in MODEL:
    pytest.skip(f"not a Raspberry Pi 4 or 5 ({MODEL or 'no device-tree model'})",
                allow_module_level=True)

import av  # noqa: E402
import numpy as np  # noqa: E402

from services.media.encoder import HARDWARE_ENCODER, SOFTWARE_ENCODER, x264_options  # noqa: E402


def encode(name: str, width: int, height: int, frames: int) -> tuple[list[bytes], float]:
    codec = av.CodecContext.create(name, "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, 90000)
    codec.framerate = Fraction(30, 1)
    codec.bit_rate = 1_500_000
    codec.gop_size = 60
    if name == SOFTWARE_ENCODER:
        codec.options = x264_options(60, 1500)
    codec.open()
    rng = np.random.default_rng(1)
    packets: list[bytes] = []
    started = time.monotonic()
    for index in range(frames):
        image = rng.integers(0, 255, (height * 3 // 2, width), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = index * 3000
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets, time.monotonic() - started


@pytest.mark.skipif("Raspberry Pi 4" not in MODEL, reason="the hardware encoder is the Pi 4's")
def test_pi4_hardware_encoder_makes_h264() -> None:
    packets, _ = encode(HARDWARE_ENCODER, 1280, 720, 90)
    assert len(packets) >= 80
    assert packets[0].startswith((b"\0\0\0\1", b"\0\0\1")), "Annex B start code"


@pytest.mark.skipif("Raspberry Pi 5" not in MODEL, reason="software encoding is the Pi 5's")
def test_pi5_software_encoder_keeps_up_with_720p30() -> None:
    with pytest.raises((av.error.FFmpegError, OSError, ValueError)):
        encode(HARDWARE_ENCODER, 1280, 720, 1)
    packets, seconds = encode(SOFTWARE_ENCODER, 1280, 720, 150)
    assert len(packets) >= 140
    assert seconds < 5.0, f"150 frames (5 s of video) took {seconds:.1f} s"

"""Encoder options: x264 and libvpx, as the room and the recordings use them.

The values follow what WebRTC's own encoders do for live video (no B-frames or
look-ahead, a bounded GOP, CBR for VP8) and what the benchmarks measured on this box's
paths (docs/performance.md): x264's threads by frame size, libvpx's speed by frame size,
cores and CPU family.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: Up to this many pixels a frame, x264 encodes on one thread (see :func:`x264_threads`).
ONE_THREAD_PIXELS = 640 * 480


def x264_threads(width: int, height: int) -> int:
    """x264's thread count: 1 up to 640x480, else 0 (x264's own choice, sliced threads).

    At these sizes x264's slices hardly shorten a frame's encode (1.5-1.8 ms here either
    way), and keeping its four slice threads in step cost 13 % more of the encode's CPU
    in the CPU-quota benchmark; larger frames need the slices to stay within a frame's
    time on a Pi's cores."""
    return 1 if width * height <= ONE_THREAD_PIXELS else 0


def x264_options(gop: int, max_kbps: int, preset: str = "ultrafast",
                 threads: int = 0) -> dict[str, str]:
    """libx264 options for live WebRTC-compatible H.264 (constrained baseline, level 3.1);
    ``threads`` 0 is x264's own choice."""
    return {
        "preset": preset,
        "tune": "zerolatency",
        "profile": "baseline",  # x264 writes it as constrained baseline (42c0xx)
        "level": "3.1",
        "forced-idr": "1",
        # VBV caps bursts; it also lets x264 change its bitrate while running
        "maxrate": str(max_kbps * 1000),
        "bufsize": str(max_kbps * 1000 // 2),
        "threads": str(threads),
        "x264-params": f"keyint={gop}:repeat-headers=1",
    }


def vp8_cpu_used(width: int, height: int, cores: int | None = None,
                 machine: str | None = None) -> int:
    """libvpx's ``cpu-used`` for live VP8: negative, a fixed speed, as libwebrtc sets it.

    In real-time mode a positive ``cpu-used`` is not a speed: libvpx then picks its own
    speed before each frame, from 4 (slow) up, to spend at most (16 - cpu_used) / 16 of a
    frame's time encoding it, so 12 means "up to a quarter of every frame's 33 ms" and a
    fast CPU gets the slow speeds. A negative value is that speed, fixed. libwebrtc's
    choice (``GetCpuSpeed`` in its VP8 encoder): on ARM -12 with up to three cores,
    otherwise -8 up to 352x288, -10 up to 640x480, -12 above; elsewhere -6 (-4 below
    352x288). On this box's paced 640x480 encode (docs/performance.md, "VP8's speed"):
    2.82 ms a frame at 12, 1.72 ms at -6 for the same picture quality."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    machine = (machine if machine is not None else platform.machine()).lower()
    pixels = width * height
    if machine.startswith(("arm", "aarch64")):
        if cores <= 3:
            return -12
        return -8 if pixels <= 352 * 288 else -10 if pixels <= 640 * 480 else -12
    return -4 if pixels < 352 * 288 else -6


def vp8_options(kbps: int, cpu_used: int) -> dict[str, str]:
    """libvpx options for live VP8 in WebRTC: real-time, error resilient, CBR at ``kbps``,
    at speed ``cpu_used`` (:func:`vp8_cpu_used`)."""
    bps = str(kbps * 1000)
    return {
        "deadline": "realtime",
        "cpu-used": str(cpu_used),
        "error-resilient": "default",
        "lag-in-frames": "0",
        "auto-alt-ref": "0",
        # minrate == maxrate == bitrate is libvpx's CBR; a 1 s buffer, as WebRTC uses
        "minrate": bps,
        "maxrate": bps,
        "bufsize": bps,
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "static-thresh": "1",
        "max-intra-rate": "300",
    }


def vp8_token_bytes(width: int, height: int) -> int:
    """The size of the token buffer libvpx's VP8 encoder allocates, and zeroes, when it
    opens: room for 24 blocks of 16 tokens per 16x16 macroblock, each token a
    ``TOKENEXTRA`` (a pointer and four bytes: two pointers' size)."""
    macroblocks = ((width + 15) // 16) * ((height + 15) // 16)
    return macroblocks * 24 * 16 * 2 * ctypes.sizeof(ctypes.c_void_p)

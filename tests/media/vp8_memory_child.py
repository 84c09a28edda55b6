"""A VP8 encode in a process of its own, for its memory: ``python -m
tests.media.vp8_memory_child OUT_DIR [keep]``.

Encodes 60 frames of the sim camera's pattern at 640x480, then changes the bitrate twice,
60 frames apart, so the encoder reopens twice, and prints one JSON line: the resident anonymous
memory after each stage, the bytes of libvpx's zeroed token buffer given back, and the
opens. The packets are written to ``OUT_DIR/NNNNN.vp8``, one file per packet,
for the test to decode. With ``keep``, nothing is given back (the reference).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from drivers.camera.base import CapturedFrame
from drivers.camera.sim import PatternRenderer
from services.media import codecs
from services.media.codec_options import vp8_token_bytes

FRAMES = 180


def rss_anon() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def main(out: Path, keep: bool) -> None:
    if keep:
        codecs.give_back_zeroed = lambda *args: 0
    renderer = PatternRenderer(640, 480)
    frames = [renderer.render(n, 0.0) for n in range(FRAMES)]
    enc = codecs.CodecEncode(codecs.VP8, "child", bitrate_kbps=1000, gop_seconds=10.0)
    start = rss_anon()
    t0 = time.monotonic()
    stages = []
    packets = 0
    for n, frame in enumerate(frames):
        if n % 60 == 0 and n:
            enc.set_bitrate(1000 - 5 * n)  # libvpx takes it only by reopening
        # each 60 frames captured 6 s later, past the encoder's reopen interval
        at = t0 + n / 30 + (n // 60) * (codecs.REOPEN_INTERVAL + 1)
        for p in enc.encode(frame, CapturedFrame(frame, n, at), t0, 30, to_sinks=False):
            (out / f"{packets:05d}.vp8").write_bytes(p.data)
            packets += 1
        if n % 60 == 59:
            stages.append(rss_anon() - start)
    print(json.dumps({"anon_growth": stages, "given_back": enc.pages_given_back,
                      "opens": enc.codec_opens, "packets": packets,
                      "token_bytes": vp8_token_bytes(640, 480)}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] == ["keep"])

"""The mic's send path: CPU per second of audio, before and after Opus moved into it.

Before: what aiortc does with a track of audio frames: each 20 ms frame becomes an
``av.AudioFrame`` and is encoded by aiortc's ``OpusEncoder`` (PyAV libopus, 96 kbps
stereo, resampled to stereo first) in the loop's default executor, one hop per frame.
After: the room's mic track (``services.room.tracks.MicTrack``): libopus through the
ctypes binding, inline, mono, 32 kbps, FEC on (expected loss 0 and 10 %), packed by
aiortc's ``OpusEncoder.pack``; at 20 and 10 ms per packet.

The signal is 10 s of a synthetic voice (a 120-220 Hz glide with harmonics, syllable-rate
envelope, a little noise), fed in real time (one 20 ms frame every 20 ms, as a mic
does: an encode woken every 20 ms costs more than one in a tight loop). CPU is
``time.process_time`` (every thread of the process) per second of audio, the least of
two runs.

Muted (the mic's frames all zeros), the mic track sends the packet of the last silent
frame it encoded again instead of encoding each frame; the reference is the same muted
track encoding every frame, as it did before.

The mic track runs at the room's default complexity (``audio.opus_complexity``,
libopus's own 9), and once at 5 (libwebrtc's choice on phones) beside it. Then the
encoder alone per complexity (:mod:`bench.opus_complexity`): microseconds per 20 ms
frame, and what the decoded voice keeps (SNR; frames rebuilt from FEC against concealed
ones).

``measure()`` returns the figures as a dict, ``run()`` as rows for ``python -m bench``;
``python bench/bench_opus_send.py`` prints the dict as JSON.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder

from bench import opus_complexity
from bench.report import Row
from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from services.room.opus_send import OpusSendEncoder, OpusSendSettings
from services.room.tracks import MicTrack

SECONDS = 10.0
REPEATS = 2
#: RTP (12) + the header extensions aiortc sends on audio (about 16) + SRTP tag (10)
#: + UDP (8) + IPv4 (20)
OVERHEAD_BYTES = 66


def voice(seconds: float = SECONDS) -> np.ndarray[Any, np.dtype[np.int16]]:
    rng = np.random.default_rng(7)
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    f0 = 170 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    x = x * envelope + 0.02 * rng.standard_normal(len(t))
    return (x / np.max(np.abs(x)) * 12000).astype(np.int16)


class _Mic:
    def __init__(self, pcm: np.ndarray[Any, np.dtype[np.int16]]) -> None:
        self.frames = [pcm[i:i + FRAME_SAMPLES].tobytes()
                       for i in range(0, len(pcm) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]
        self.n = 0

    async def start(self) -> None: ...

    async def read(self) -> PcmFrame:
        if self.n >= len(self.frames):
            raise EOFError
        await _paced(self.n)
        self.n += 1
        return PcmFrame(self.frames[self.n - 1], self.n * 0.02, self.n)

    def set_gain(self, percent: int) -> None: ...

    @property
    def stats(self) -> dict[str, int]:
        return {}

    async def stop(self) -> None: ...


async def _paced(n: int) -> None:
    """Wait until frame ``n`` is due (real time, as from a mic), from the first frame."""
    global _start
    now = time.monotonic()
    if n == 0:
        _start = now
    delay = _start + n * FRAME_SAMPLES / SAMPLE_RATE - now
    if delay > 0:
        await asyncio.sleep(delay)


_start = 0.0


async def _aiortc_path(pcm: np.ndarray[Any, np.dtype[np.int16]]) -> tuple[float, int, int]:
    loop = asyncio.get_running_loop()
    encoder = AiortcOpusEncoder()
    mic = _Mic(pcm)
    payload = packets = 0
    started = time.process_time()
    for i, samples in enumerate(mic.frames):
        await _paced(i)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(samples)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = i * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        payloads, _ = await loop.run_in_executor(None, encoder.encode, frame, False)
        payload += sum(len(p) for p in payloads)
        packets += len(payloads)
    return time.process_time() - started, payload, packets


async def _mic_track_path(pcm: np.ndarray[Any, np.dtype[np.int16]], frame_ms: int,
                          loss_pct: int, complexity: int | None = None,
                          muted: bool = False, skip_silence: bool = True
                          ) -> tuple[float, int, int]:
    settings = OpusSendSettings(frame_ms=frame_ms)
    if complexity is not None:
        settings = OpusSendSettings(frame_ms=frame_ms, complexity=complexity)
    track = MicTrack(_Mic(pcm), lambda: (True, not muted, 100), settings)
    if not skip_silence:
        track.encoder.close()
        track.encoder = OpusSendEncoder(settings, skip_silence=False)
    track.on_receiver_report(loss_pct)
    packer = AiortcOpusEncoder()
    payload = packets = 0
    started = time.process_time()
    while True:
        try:
            packet = await track.recv()
        except Exception:  # the bench mic ran out (MediaStreamError)
            break
        payloads, _ = packer.pack(packet)
        payload += sum(len(p) for p in payloads)
        packets += len(payloads)
    cpu = time.process_time() - started
    track.stop()
    return cpu, payload, packets


def _best(make: Any) -> tuple[float, int, int]:
    runs = [asyncio.run(make()) for _ in range(REPEATS)]
    return min(runs, key=lambda r: r[0])


def measure() -> dict[str, Any]:
    pcm = voice()
    seconds = len(pcm) / SAMPLE_RATE
    out: dict[str, Any] = {"audio_seconds": seconds}
    cases: dict[str, Any] = {
        "aiortc (before)": lambda: _aiortc_path(pcm),
        "mic track 20 ms": lambda: _mic_track_path(pcm, 20, 0),
        "mic track 20 ms, 10% loss": lambda: _mic_track_path(pcm, 20, 10),
        "mic track 10 ms": lambda: _mic_track_path(pcm, 10, 0),
        "mic track 20 ms, complexity 5": lambda: _mic_track_path(pcm, 20, 0, 5),
        "mic track 20 ms, muted": lambda: _mic_track_path(pcm, 20, 0, muted=True),
        "mic track 20 ms, muted, every frame encoded": lambda: _mic_track_path(
            pcm, 20, 0, muted=True, skip_silence=False),
    }
    for name, make in cases.items():
        cpu, payload, packets = _best(make)
        out[f"cpu_s_per_audio_s[{name}]"] = round(cpu / seconds, 5)
        out[f"payload_kbps[{name}]"] = round(payload * 8 / seconds / 1000, 1)
        out[f"packets_per_s[{name}]"] = round(packets / seconds, 1)
        out[f"wire_kbps[{name}]"] = round(
            (payload + packets * OVERHEAD_BYTES) * 8 / seconds / 1000, 1)
    out["complexity"] = opus_complexity.measure(pcm)
    return out


def run() -> list[Row]:
    """The figures as rows of the ``make bench`` table."""
    m = measure()
    before = m["cpu_s_per_audio_s[aiortc (before)]"]
    rows = []
    for name in ("mic track 20 ms", "mic track 20 ms, 10% loss", "mic track 10 ms",
                 "mic track 20 ms, complexity 5"):
        rows.append(Row("opus-send", f"CPU per audio second ({name})",
                        m[f"cpu_s_per_audio_s[{name}]"], "s/s", reference=before,
                        reference_name="aiortc's encode",
                        notes="one process, time.process_time", extra=m if not rows else {}))
    muted = "mic track 20 ms, muted"
    rows.append(Row("opus-send", f"CPU per audio second ({muted})",
                    m[f"cpu_s_per_audio_s[{muted}]"], "s/s",
                    reference=m[f"cpu_s_per_audio_s[{muted}, every frame encoded]"],
                    reference_name="every frame encoded",
                    notes="the packet of the last silent frame sent again after 100 ms"))
    for name in ("aiortc (before)", "mic track 20 ms", "mic track 20 ms, 10% loss",
                 "mic track 10 ms", muted):
        rows.append(Row("opus-send", f"bitrate on the wire ({name})", m[f"wire_kbps[{name}]"],
                        "kbps", notes=f"payload {m[f'payload_kbps[{name}]']} kbps, "
                        f"{m[f'packets_per_s[{name}]']:g} packets/s, "
                        f"{OVERHEAD_BYTES} B/packet headers"))
    return rows + _complexity_rows(m["complexity"])


def _complexity_rows(by: dict[str, dict[str, Any]]) -> list[Row]:
    default = by["default"]
    rows = []
    for key, got in by.items():
        if key == "default":
            continue
        rows.append(Row(
            "opus-send", f"libopus encode per 20 ms frame, complexity {key}",
            got["us_per_frame"], "us", reference=default["us_per_frame"],
            reference_name=f"libopus default ({default['complexity']})",
            notes=f"SNR {got['snr_db']} dB (default {default['snr_db']}); lost frames: "
                  f"FEC {got['fec_snr_db']} dB, concealed {got['plc_snr_db']} dB; "
                  f"{got['kbps']} kbps; TOC configs {got['modes']}"))
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))

"""Speakerphone processing: echo cancellation quality (ERLE) and CPU per second of audio.

A simulated room: speech from espeak-ng (resampled to 48 kHz by sox) is played, goes
through a synthetic room (decaying noise, 100 ms) 60 ms late, and reaches the mic. ERLE
is measured after 2 s of convergence. CPU is ``time.process_time`` spent in
``AudioProcessor.process`` (and ``feed_playout``) per second of audio, per stage set
(the least of three runs).

``measure()`` returns the figures as a dict, ``run()`` as rows for ``python -m bench``;
``python bench/bench_dsp.py`` prints the dict as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Row
from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from services.audio import AudioProcessor, ProcessingOptions

TEXT = (
    "The quick brown fox jumps over the lazy dog. Meanwhile the committee agreed to "
    "postpone the budget discussion until next Thursday afternoon, when everyone would be "
    "back from the conference. Please remember to bring the quarterly figures and the new "
    "project schedule."
)
SECONDS = 15.0
DELAY_MS = 60.0
CONVERGE_S = 2.0
REPEATS = 3
Float = npt.NDArray[np.float64]


def _speech(workdir: Path) -> Float:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed for the DSP benchmark")
    raw, wav = workdir / "raw.wav", workdir / "far.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), TEXT],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)],
                   check=True, capture_output=True, timeout=60)
    with wave.open(str(wav)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    active = np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)
    x *= 32768 * 10 ** (-20 / 20) / np.sqrt(np.mean(x[active] ** 2))
    n = int(SECONDS * SAMPLE_RATE)
    while len(x) < n:
        x = np.concatenate([x, x])
    return x[:n]


def _room(far: Float) -> Float:
    rng = np.random.default_rng(42)
    n = int(0.1 * SAMPLE_RATE)
    h = rng.standard_normal(n) * np.exp(-np.arange(n) / SAMPLE_RATE * 69.0)
    h *= 10 ** (-6 / 20) / np.sqrt(np.sum(h * h))
    d = int(SAMPLE_RATE * DELAY_MS / 1000)
    n = 1 << (len(far) + len(h)).bit_length()
    wet = np.fft.irfft(np.fft.rfft(far, n) * np.fft.rfft(h, n), n)
    return np.concatenate([np.zeros(d), wet[: len(far) - d]])


def _process(options: ProcessingOptions, mic: Float,
             far: Float) -> tuple[npt.NDArray[np.int16], float]:
    mic16 = np.clip(np.round(mic), -32768, 32767).astype(np.int16)
    far16 = np.clip(np.round(far), -32768, 32767).astype(np.int16)
    n = len(mic16) // FRAME_SAMPLES
    step = FRAME_SAMPLES / SAMPLE_RATE
    mic_frames = [PcmFrame(mic16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes(),
                           100.0 + k * step, k) for k in range(n)]
    far_frames = [PcmFrame(far16[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES].tobytes(),
                           100.0 + k * step, k) for k in range(n)]
    chunks = []
    with AudioProcessor(options) as p:
        start = time.process_time()
        for k in range(n):
            p.feed_playout(far_frames[k], far_frames[k].captured_at)
            chunks.append(p.process(mic_frames[k]).samples)
        cpu = time.process_time() - start
    out = np.frombuffer(b"".join(chunks), dtype=np.int16)
    return out, cpu / (n * step)


def _erle(echo: Float, out: npt.NDArray[np.int16]) -> float:
    s = int(CONVERGE_S * SAMPLE_RATE)
    e_in = float(np.sum(echo[s:len(out)] ** 2))
    e_out = float(np.sum(out[s:].astype(np.float64) ** 2))
    return round(10 * np.log10(e_in / max(e_out, 1.0)), 1)


def measure() -> dict[str, Any]:
    """ERLE (dB) and CPU seconds per second of audio, for each set of stages."""
    with tempfile.TemporaryDirectory(prefix="bench-dsp-") as tmp:
        far = _speech(Path(tmp))
    echo = _room(far)
    sets = {
        "aec+ns+agc": ProcessingOptions(),
        "aec+ns": ProcessingOptions(agc=False),
        "aec": ProcessingOptions(noise_suppression=False, agc=False),
        "ns+agc": ProcessingOptions(aec=False),
        "off": ProcessingOptions(aec=False, noise_suppression=False, agc=False),
    }
    result: dict[str, Any] = {
        "audio_seconds": SECONDS, "echo_delay_ms": DELAY_MS, "converge_seconds": CONVERGE_S,
    }
    for name, options in sets.items():
        # The least CPU of a few runs: other work on the machine only ever adds to it.
        runs = [_process(options, echo, far) for _ in range(REPEATS)]
        out, cpu = runs[0][0], min(c for _, c in runs)
        result[f"cpu_s_per_audio_s[{name}]"] = round(cpu, 4)
        if options.aec:
            result[f"erle_db[{name}]"] = _erle(echo, out)
    result["erle_db"] = result["erle_db[aec+ns+agc]"]
    result["cpu_s_per_audio_s"] = result["cpu_s_per_audio_s[aec+ns+agc]"]
    return result


def run() -> list[Row]:
    """The figures as rows of the ``make bench`` table."""
    m = measure()
    notes = f"{m['audio_seconds']:g} s of speech, echo {m['echo_delay_ms']:g} ms late"
    rows = [Row("dsp", "echo reduction ERLE (aec+ns+agc)", m["erle_db"], "dB",
                lower_is_better=False, notes=notes + f", after {m['converge_seconds']:g} s",
                extra=m)]
    for name in ("aec", "aec+ns"):
        rows.append(Row("dsp", f"echo reduction ERLE ({name})", m[f"erle_db[{name}]"], "dB",
                        lower_is_better=False))
    for name in ("aec+ns+agc", "aec", "ns+agc", "off"):
        rows.append(Row("dsp", f"CPU per audio second ({name})",
                        m[f"cpu_s_per_audio_s[{name}]"], "s/s",
                        notes="one core, time.process_time"))
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))

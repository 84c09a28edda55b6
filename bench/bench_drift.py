"""Clock drift: does the delay stay put when the sound card's clock is off?

A box's sim speaker runs fast or slow by ``sim.speaker_drift_ppm`` (here +-1000 ppm, a
poor crystal's worth ten times over); in a second room at the same time, the sending
box's sim mic does (``sim.mic_drift_ppm``). Either way, 1000 ppm over two minutes is
120 ms of audio that the receiving jitter buffer must add or remove by stretching, or
the delay walks away (or the voice underruns). Mouth-to-ear (clicks, as in
:mod:`bench.voices_latency`) is taken over the first :data:`WINDOW_CLICKS` clicks once
the call has settled and over the last ones before :data:`DRIFT_S` s; the goal is an
end within 10 ms of the start. Chromium cannot be made to drift: the goal is the
reference. Links are clean (through the lab, unimpaired).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from typing import Any

from bench.clicks import PERIOD_S
from bench.env import BenchRoom
from bench.report import Row
from bench.voices_latency import BoxClicks

log = logging.getLogger(__name__)

DRIFT_S = float(os.environ.get("BENCH_DRIFT_S", "120"))
PPMS = (1000.0, -1000.0)
WINDOW_CLICKS = 10
SETTLE_S = 3.0
GOAL_MS = 10.0


def _p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _leg(boxes: BoxClicks, start: float, seconds: float) -> dict[str, Any]:
    got = boxes.between(start, start + seconds)
    return {"ear_p50_ms": _p50(got["ear_ms"]), "mixer_p50_ms": _p50(got["mixer_ms"]),
            "n": len(got["ear_ms"])}


def measure(drift_s: float = DRIFT_S) -> dict[str, Any]:
    results: dict[str, Any] = {"drift_s": drift_s}
    window = WINDOW_CLICKS * PERIOD_S
    with BenchRoom("dr") as env:
        for ppm in PPMS:
            pairs = {"speaker": BoxClicks(env, speaker_drift_ppm=ppm, name="s"),
                     "mic": BoxClicks(env, mic_drift_ppm=ppm, name="m")}
            time.sleep(SETTLE_S)
            t0 = time.monotonic()
            trace: dict[str, list[tuple[float, float, float]]] = {k: [] for k in pairs}
            while time.monotonic() < t0 + drift_s + 0.5:
                for key, boxes in pairs.items():
                    for buf in boxes.buffers():
                        trace[key].append((round(time.monotonic() - t0, 1), buf["delay_ms"],
                                           buf["target_ms"]))
                time.sleep(2.0)
            for key, boxes in pairs.items():
                first = _leg(boxes, t0, window)
                last = _leg(boxes, t0 + drift_s - window, window)
                speaker = boxes.b.session.speaker
                results[f"{key} {ppm:+.0f} ppm"] = {
                    "start": first, "end": last, "buffers": boxes.buffers(),
                    "speaker": dict(speaker.stats) if speaker is not None else {},
                    "trace": trace[key]}
                env.drop_peer(boxes.b)
                env.drop_peer(boxes.a)
            log.info("drift %+.0f ppm: %s", ppm, results)
    return results


def run() -> list[Row]:
    m = measure()
    rows = []
    for name, leg in m.items():
        if not isinstance(leg, dict):
            continue
        a, b = leg["start"]["ear_p50_ms"], leg["end"]["ear_p50_ms"]
        change = None if a is None or b is None else b - a
        buf = leg["buffers"][0] if leg["buffers"] else {}
        trace = leg["trace"]
        targets = (f"target {_p50([g for t, _, g in trace if t <= 10]) or 0:.0f} -> "
                   f"{_p50([g for t, _, g in trace if t >= m['drift_s'] - 10]) or 0:.0f} ms; ")
        rows.append(Row(
            "drift", f"mouth-to-ear change over {m['drift_s']:.0f} s, {name}",
            None if change is None else abs(change), "ms", GOAL_MS, "goal",
            notes=(f"start {a or 0:.1f} -> end {b or 0:.1f} ms (n={leg['start']['n']}/"
                   f"{leg['end']['n']}); {targets}stretched {buf.get('stretched_pct')}%, "
                   f"underruns {buf.get('underruns')}, speaker underruns "
                   f"{leg['speaker'].get('underruns')}"),
            extra=leg))
    return rows


if __name__ == "__main__":
    import json
    import sys

    logging.basicConfig(level=logging.INFO)
    got = measure(float(sys.argv[1]) if len(sys.argv) > 1 else DRIFT_S)
    print(json.dumps(got, indent=1, default=str))

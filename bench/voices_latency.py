"""Mouth-to-ear through the impairment lab: two boxes beside two Chromium pages.

Box A's sim mic plays clicks (:mod:`bench.clicks`) into a room; box B hears them. A
Chromium page publishes the same clicks into another room and a second page hears them.
All four hosts are behind the lab, and each level is set on all four links, up and
down. Per level there are :data:`RUNS` runs of :data:`CLICKS_PER_RUN` clicks. Before each
run, B's sim speaker is stopped and started again after a random part of its 20 ms
period, so its playout grid meets the mic's at a new phase (the sim clocks both run on
20 ms grids, and one phase alone would give one figure, not a distribution).

Ours: mouth is the click's capture time (a tap on A's mic), ear the time B's speaker
plays its first loud sample (the sim speaker plays a block the moment it pulls it; a
real card adds its own buffer), mixer output the time the speaker pulls that block from
the mixer (the jitter buffer decodes, conceals and mixes as it is pulled). Chromium's
figure is taken where a block is handed to its audio renderer (playout-ready,
MediaStreamTrackProcessor timestamps): like for like with our mixer output.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import time
from typing import Any

from bench.clicks import (
    PERIOD_S,
    OnsetDetector,
    TapMic,
    TapSink,
    match_latencies,
    write_click_wav,
)
from bench.env import BenchRoom, percentile, wait_until
from tests.harness.impair import CLEAN, Impairment

log = logging.getLogger(__name__)

RUNS = int(os.environ.get("BENCH_LATENCY_RUNS", "5"))
CLICKS_PER_RUN = 10
SETTLE_S = 3.0  # after a level is set
RESTART_SETTLE_S = 1.5  # after the speaker restarts at a new phase
WARMUP_S = 12.0  # after the joins (see bench.bench_impaired.WARMUP_S)


class BoxClicks:
    """Box A clicking into a room, box B listening; both behind the lab."""

    def __init__(self, env: BenchRoom, *, speaker_drift_ppm: float = 0.0,
                 mic_drift_ppm: float = 0.0, name: str = "") -> None:
        room = env.new_room()
        wav = write_click_wav(env.workdir / "clicks48k.wav")
        self.a = env.peer(f"ka{name}", room, tone=str(wav), up=CLEAN, down=CLEAN,
                          mic_drift_ppm=mic_drift_ppm)
        self.b = env.peer(f"kb{name}", room, tone=None, up=CLEAN, down=CLEAN,
                          speaker_drift_ppm=speaker_drift_ppm)
        self.sent, self.heard, self.mixed = OnsetDetector(), OnsetDetector(), OnsetDetector()
        self.a.session.mic = TapMic(self.a.session.mic, self.sent)  # type: ignore[assignment]
        self.b.session.mixer.sink = TapSink(self.b.session.mixer.sink, self.mixed)
        assert self.b.session.speaker is not None
        self.b.session.speaker.add_playout_listener(  # type: ignore[attr-defined]
            self.heard.playout_listener())
        self.a.call(lambda s: s.join())
        self.b.call(lambda s: s.join())
        wait_until(lambda: self.heard.onsets, 30, "the first click at B")

    @property
    def hosts(self) -> list[Any]:
        return [self.a.host, self.b.host]

    def new_phase(self, rng: random.Random) -> float:
        """Restart B's speaker a random part of a period later; returns that part (ms)."""
        speaker = self.b.session.speaker
        assert speaker is not None
        self.b.call(lambda s: speaker.stop())
        shift = rng.uniform(0.0, 0.02)
        time.sleep(shift)
        self.b.call(lambda s: speaker.start())
        return shift * 1000

    def between(self, start: float, end: float) -> dict[str, list[float]]:
        """Latencies (ms) of the clicks sent from ``start`` (monotonic) heard by ``end``."""
        sent = [t for t in self.sent.onsets if start - 0.5 < t < end]

        def matched(arrivals: list[float]) -> list[float]:
            return [x * 1000 for x in
                    match_latencies(sent, [t for t in arrivals if start < t < end])]

        return {"ear_ms": matched(self.heard.onsets), "mixer_ms": matched(self.mixed.onsets),
                "sent": [len(sent)]}

    def buffers(self) -> list[dict[str, Any]]:
        return [s.buffer.stats() for s in self.b.session.mixer._sources]


def _summary(runs: list[list[float]]) -> dict[str, Any]:
    """p50 over runs (the median of each run's p50) and p95 of every sample."""
    p50s = [statistics.median(r) for r in runs if r]
    pooled = [x for r in runs for x in r]
    return {"p50_ms": statistics.median(p50s) if p50s else None,
            "run_p50s_ms": [round(x, 1) for x in p50s],
            "p95_ms": percentile(pooled, 95), "n": len(pooled)}


def measure_level(boxes: BoxClicks, pair: Any, rng: random.Random,
                  runs: int = RUNS) -> dict[str, Any]:
    ear: list[list[float]] = []
    mixer: list[list[float]] = []
    chrome: list[list[float]] = []
    phases = []
    for _ in range(runs):
        phases.append(round(boxes.new_phase(rng), 2))
        time.sleep(RESTART_SETTLE_S)
        start, wall_start = time.monotonic(), time.time()
        time.sleep(CLICKS_PER_RUN * PERIOD_S)
        end, wall_end = time.monotonic(), time.time()
        time.sleep(0.5)  # the last click's way through
        got = boxes.between(start, end)
        ear.append(got["ear_ms"])
        mixer.append(got["mixer_ms"])
        if pair is not None:
            chrome.append(pair.clicks_between(wall_start, wall_end)["latencies_ms"])
    return {"ours_ear": _summary(ear), "ours_mixer": _summary(mixer),
            "chromium_ready": _summary(chrome) if pair is not None else None,
            "phases_ms": phases, "buffers": boxes.buffers()}


def measure(env: BenchRoom, levels: tuple[tuple[str, Impairment], ...],
            seeded: Any, runs: int = RUNS) -> dict[str, Any]:
    """Per level, ours and Chromium's mouth-to-ear; ``seeded(imp, seed)`` seeds a level."""
    from bench.chromium import ChromiumPair

    rng = random.Random(15)
    results: dict[str, Any] = {}
    boxes = BoxClicks(env)
    with ChromiumPair(env, env.workdir / "chromium-clicks", impaired=True) as pair:
        pair.start_clicks()
        time.sleep(WARMUP_S)
        hosts = boxes.hosts + [p.host for p in pair.peers]
        for n, (name, imp) in enumerate(levels):
            for h, host in enumerate(hosts):
                env.link(host).set(up=seeded(imp, 500 + 100 * n + 2 * h),
                                   down=seeded(imp, 500 + 100 * n + 2 * h + 1))
            time.sleep(SETTLE_S)
            results[name] = measure_level(boxes, pair, rng, runs)
            log.info("latency %s: %s", name, results[name])
        for host in hosts:
            env.link(host).set(up=CLEAN, down=CLEAN)
    env.drop_peer(boxes.b)
    env.drop_peer(boxes.a)
    return results

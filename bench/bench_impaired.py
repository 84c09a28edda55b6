"""Voices through the impairment lab: two boxes beside two Chromium peers, in one run.

Two of our room sessions (in-process, each in its own namespace) share one room, two
headless Chromium pages (:mod:`bench.chromium`) another; every one of the four is behind
the impairment lab (:mod:`tests.harness.impaired`), and each level below is set on all
four links, up and down, at once, so each voice crosses two impaired legs (its sender's
uplink, its receiver's downlink), as on a real network. Each sends a steady tone (440
and 880 Hz) and listens to the other's.

Continuity is the share of 20 ms windows in which the other's tone is within 6 dB of
its clean level (measured first, on clean links, for each receiver); the longest gap is
the longest run of windows that are not. Ours is read from the sim speaker's WAV (what
the speaker pulled), Chromium's from the blocks its audio renderer was handed
(MediaStreamTrackProcessor on the received track). Concealed is the share of samples
made by concealment: our jitter buffers' counters, Chromium's ``concealedSamples``; on
both sides a loss rebuilt from in-band FEC data is decoded audio, not concealment.
Delay: our jitter buffers' own delay (``delay_ms``, mean of the two), Chromium's
``jitterBufferDelay`` per emitted sample over the leg.

Then mouth-to-ear per level (:mod:`bench.voices_latency`): a clicking box and a
listening one, a clicking page and a listening one, through the same levels, five runs
each at a random phase of the sim clocks' 20 ms grids.

Each box's event loop is watched meanwhile (:mod:`bench.looplag`): packets are stamped
when the loop hands them over, so a late loop shows as network jitter.
``BENCH_IMPAIRED_ORDER=reverse`` runs the levels last to first (to tell what a level
does from what the levels before it left behind); ``BENCH_IMPAIRED_LATENCY=0`` skips
the mouth-to-ear part.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from bench import voices_latency
from bench.env import BenchRoom, wait_until
from bench.looplag import LoopLag, lag_summary
from bench.report import Row
from drivers.audio.sim import TONE_AMPLITUDE
from tests.harness.audio import continuity, tone_levels, wav_tail
from tests.harness.impair import CLEAN, Impairment
from tests.harness.peers import RoomPeer

log = logging.getLogger(__name__)

JITTER = Impairment(delay_ms=30, jitter_ms=30)  # netem's "delay 30ms 30ms"
LEVELS: tuple[tuple[str, Impairment], ...] = (
    ("clean", CLEAN),
    ("5% loss", Impairment(loss=0.05)),
    ("30 ms jitter", JITTER),
    ("10% loss + 30 ms jitter", dataclasses.replace(JITTER, loss=0.10)),
    ("3% bursts of 3", Impairment.bursty(0.03, mean_burst=3)),
)
LEG_S = 30.0
SETTLE_S = 3.0
CLEAN_S = 3.0
#: After everything joined: the joins' and the pages' start-up load (they share this
#: machine's two cores) lifts the buffers' targets for their hold time; let it pass.
WARMUP_S = 12.0
TONES = (440.0, 880.0)


def write_tone_wav(path: Path, hz: float, seconds: float = 10.0, rate: int = 44_100) -> Path:
    """A stereo tone at the sim mic's level that loops cleanly (whole cycles)."""
    n = round(round(seconds * hz) / hz * rate)
    x = np.sin(2 * math.pi * hz * np.arange(n) / rate) * TONE_AMPLITUDE * 32767
    pcm = np.repeat(x.astype("<i2")[:, None], 2, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def levels_in_order() -> tuple[tuple[str, Impairment], ...]:
    order = os.environ.get("BENCH_IMPAIRED_ORDER", "forward")
    if order not in ("forward", "reverse"):
        raise ValueError(f"BENCH_IMPAIRED_ORDER is forward or reverse, got {order!r}")
    return LEVELS if order == "forward" else tuple(reversed(LEVELS))


def _seeded(imp: Impairment, seed: int) -> Impairment:
    return dataclasses.replace(imp, seed=seed) if imp != CLEAN else imp


def _buffers(peer: RoomPeer) -> list[Any]:
    return [s.buffer for s in peer.session.mixer._sources]


def _counters(peer: RoomPeer) -> tuple[int, int]:
    bufs = _buffers(peer)
    return sum(b.samples_concealed for b in bufs), sum(b.samples_out for b in bufs)


class Chromes:
    """Two Chromium pages in one room, each sending a tone and hearing the other's."""

    def __init__(self, env: BenchRoom, workdir: Path) -> None:
        from bench.chromium import ChromiumPeer

        room = env.new_room()
        self.pages = []
        for k, hz in enumerate(TONES):
            wav = write_tone_wav(workdir / f"tone{hz:.0f}.wav", hz)
            self.pages.append(ChromiumPeer(env, f"c{k}", workdir, wav, up=CLEAN, down=CLEAN))
        feeds = [910_000 + room * 2 + k for k in range(2)]
        for k, page in enumerate(self.pages):
            page.open(role="tone", room=room, feed=feeds[k], other=feeds[1 - k],
                      hz=TONES[1 - k])
        for page in self.pages:
            page.server.wait("tone", "subscribed", 60)

    def windows(self, k: int, start: float, end: float) -> np.ndarray[Any, Any]:
        got = [lv for batch in self.pages[k].server.take("tone", "levels")
               for t, lv in batch if start * 1000 <= t < end * 1000]
        return np.asarray(got, dtype=np.float64)

    def stats_at(self, k: int, when: float) -> dict[str, Any] | None:
        """The page's receive stats reported last before ``when`` (wall clock)."""
        got = [s for s in self.pages[k].server.take("tone", "stats")
               if s and s["at"] <= when * 1000]
        return got[-1] if got else None

    def close(self) -> None:
        for page in self.pages:
            try:
                page.close()
            except Exception as exc:
                log.warning("closing chromium: %s", exc)


def measure(leg_s: float = LEG_S, latency: bool | None = None) -> dict[str, Any]:
    from bench.chromium import ChromiumPeer  # noqa: F401  (fails early without chromium)

    if latency is None:
        latency = os.environ.get("BENCH_IMPAIRED_LATENCY", "1") != "0"
    levels = levels_in_order()
    results: dict[str, Any] = {"levels": {}, "order": [name for name, _ in levels],
                               "leg_s": leg_s}
    with BenchRoom("bi") as env:
        results["levels"] = continuity_legs(env, levels, leg_s, results)
        if latency:
            results["latency"] = voices_latency.measure(env, levels, _seeded)
    return results


def continuity_legs(env: BenchRoom, levels: tuple[tuple[str, Impairment], ...],
                    leg_s: float, results: dict[str, Any]) -> dict[str, Any]:
    room = env.new_room()
    boxes = [env.peer(f"b{k}", room, tone=f"tone:{hz:.0f}", up=CLEAN, down=CLEAN)
             for k, hz in enumerate(TONES)]
    for box in boxes:
        box.call(lambda s: s.join())
    lags = [LoopLag(box) for box in boxes]
    chromes = Chromes(env, env.workdir)
    out: dict[str, Any] = {}
    try:
        hosts = [b.host for b in boxes] + [p.host for p in chromes.pages]
        heard = [TONES[1], TONES[0]]  # what each box / page listens for

        def box_levels(k: int, seconds: float) -> np.ndarray[Any, Any]:
            return tone_levels(wav_tail(boxes[k].speaker_path, seconds), heard[k])

        wait_until(lambda: all(np.median(box_levels(k, 1.0)) > 0.05 for k in range(2)),
                   30, "each box hearing the other")
        wait_until(lambda: all(len(chromes.windows(k, time.time() - 2, time.time())) > 20
                               and np.median(chromes.windows(k, time.time() - 2,
                                                             time.time())) > 0.05
                               for k in range(2)), 30, "each page hearing the other")
        time.sleep(WARMUP_S)
        t0 = time.time()
        time.sleep(CLEAN_S)
        time.sleep(1.5)  # the pages report once a second
        clean_box = [float(np.median(box_levels(k, CLEAN_S))) for k in range(2)]
        clean_page = [float(np.median(chromes.windows(k, t0, t0 + CLEAN_S)))
                      for k in range(2)]
        results["clean_level"] = {"ours": clean_box, "chromium": clean_page}
        for name, imp in levels:
            n = [x for x, _ in LEVELS].index(name)  # the same seeds in either order
            for h, host in enumerate(hosts):
                env.link(host).set(up=_seeded(imp, 100 * n + 2 * h),
                                   down=_seeded(imp, 100 * n + 2 * h + 1))
            time.sleep(SETTLE_S)
            before = [_counters(b) for b in boxes]
            for lag in lags:
                lag.take()
            start = time.time()
            delays: list[float] = []
            while time.time() < start + leg_s:
                delays += [b.delay_ms for box in boxes for b in _buffers(box)]
                time.sleep(0.25)
            end = time.time()
            after = [_counters(b) for b in boxes]
            loop_lag = [lag_summary(lag.take()) for lag in lags]
            time.sleep(1.5)
            level: dict[str, Any] = {"ours": [], "chromium": [], "loop_lag": loop_lag}
            for k in range(2):
                share, gap = continuity(box_levels(k, leg_s), clean_box[k])
                conc = after[k][0] - before[k][0]
                out_n = max(1, after[k][1] - before[k][1])
                level["ours"].append({
                    "continuity_pct": 100 * share, "longest_gap_ms": 20 * gap,
                    "concealed_pct": 100 * conc / out_n,
                    "buffers": [b.stats() for b in _buffers(boxes[k])]})
                level["chromium"].append(_page_level(chromes, k, start, end, clean_page[k]))
            level["ours_delay_ms"] = float(np.median(delays)) if delays else None
            level["links"] = {h.name: env.link(h).stats() for h in hosts}
            out[name] = level
            log.info("%s: %s", name, level)
        for host in hosts:
            env.link(host).set(up=CLEAN, down=CLEAN)
    finally:
        for lag in lags:
            lag.close()
        chromes.close()
        for box in boxes:
            env.drop_peer(box)
    return out


def _page_level(chromes: Chromes, k: int, start: float, end: float,
                clean: float) -> dict[str, Any]:
    share, gap = continuity(chromes.windows(k, start, end), clean)
    s0, s1 = chromes.stats_at(k, start + 0.5), chromes.stats_at(k, end + 1.5)
    page: dict[str, Any] = {"continuity_pct": 100 * share, "longest_gap_ms": 20 * gap}
    if s0 and s1:
        samples = max(1, s1["samples"] - s0["samples"])
        page["concealed_pct"] = 100 * (s1["concealed"] - s0["concealed"]) / samples
        count = max(1, s1["jb_count"] - s0["jb_count"])
        page["jb_delay_ms"] = 1000 * (s1["jb_delay"] - s0["jb_delay"]) / count
    return page


def _worst(items: list[dict[str, Any]], key: str, low: bool) -> float | None:
    values = [i[key] for i in items if i.get(key) is not None]
    if not values:
        return None
    return min(values) if low else max(values)


def _both(items: list[dict[str, Any]], key: str, fmt: str = "{:.1f}") -> str:
    return "/".join("-" if i.get(key) is None else fmt.format(i[key]) for i in items)


def continuity_rows(name: str, lv: dict[str, Any]) -> list[Row]:
    ours, ref = lv["ours"], lv["chromium"]
    jitter = [b["jitter_ms"] for o in ours for b in o["buffers"]]
    lag = lv.get("loop_lag") or []
    notes = (f"both ways {_both(ours, 'continuity_pct')} vs {_both(ref, 'continuity_pct')}; "
             f"delay ours {lv['ours_delay_ms'] or 0:.0f} ms, chromium jb "
             f"{_both(ref, 'jb_delay_ms', '{:.0f}')} ms; our jitter estimate "
             f"{'/'.join(f'{j:.0f}' for j in jitter)} ms; loop lag max "
             f"{_both(lag, 'max_ms', '{:.0f}')} ms")
    return [
        Row("impaired", f"continuity, {name}", _worst(ours, "continuity_pct", True),
            "%", _worst(ref, "continuity_pct", True), "chromium",
            lower_is_better=False, notes=notes, extra=lv),
        Row("impaired", f"longest gap, {name}",
            _worst(ours, "longest_gap_ms", False), "ms",
            _worst(ref, "longest_gap_ms", False), "chromium",
            notes=f"both ways {_both(ours, 'longest_gap_ms', '{:.0f}')} vs "
                  f"{_both(ref, 'longest_gap_ms', '{:.0f}')}"),
        Row("impaired", f"concealed, {name}", _worst(ours, "concealed_pct", False),
            "%", _worst(ref, "concealed_pct", False), "chromium",
            notes=f"both ways {_both(ours, 'concealed_pct')} vs "
                  f"{_both(ref, 'concealed_pct')}"),
    ]


def latency_rows(name: str, lv: dict[str, Any]) -> list[Row]:
    ear, mixer, ref = lv["ours_ear"], lv["ours_mixer"], lv["chromium_ready"] or {}
    runs = (f"runs {ear['run_p50s_ms']} vs {ref.get('run_p50s_ms')}, n={ear['n']}/"
            f"{ref.get('n')}")
    return [
        Row("impaired", f"mouth-to-ear p50, {name}", ear["p50_ms"], "ms", ref.get("p50_ms"),
            "chromium ready", notes=runs, extra=lv),
        Row("impaired", f"mouth-to-ear p95, {name}", ear["p95_ms"], "ms", ref.get("p95_ms"),
            "chromium ready"),
        Row("impaired", f"mouth-to-mixer p50, {name}", mixer["p50_ms"], "ms",
            ref.get("p50_ms"), "chromium ready",
            notes=f"runs {mixer['run_p50s_ms']}, n={mixer['n']}"),
    ]


def run() -> list[Row]:
    m = measure()
    rows = []
    for name, lv in m["levels"].items():
        rows += continuity_rows(name, lv)
    for name, lv in m.get("latency", {}).items():
        rows += latency_rows(name, lv)
    return rows


if __name__ == "__main__":
    import json
    import sys

    logging.basicConfig(level=logging.INFO)
    got = measure(float(sys.argv[1]) if len(sys.argv) > 1 else LEG_S)
    print(json.dumps(got, indent=1, default=str))

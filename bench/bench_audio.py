"""Audio mouth-to-ear and join time: our room client beside two headless Chromium peers.

Mouth-to-ear: appliance A's sim mic plays clicks (:mod:`bench.clicks`); a tap on the mic
records each click's capture time, and a playout listener on appliance B's sim speaker
records when the click's first loud sample is played. Both sessions run in this process
(each in its own namespace), so both times are on one monotonic clock. The reference is
the same path between two Chromium peers (:mod:`bench.chromium`), where an AudioWorklet
on each side times the clicks on the shared wall clock.

Join: a member already in the room sends a tone; the joiner measures from calling
``join()`` to the first loud frame its speaker plays. The Chromium reference does the
same in a page: from opening the WebSocket to the first loud block its worklet sees.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import numpy as np

from bench.clicks import (
    PERIOD_S,
    OnsetDetector,
    TapMic,
    TapSink,
    match_latencies,
    write_click_wav,
)
from bench.env import BenchRoom, percentile, since, wait_until
from bench.report import Row
from drivers.audio.base import PcmFrame
from tests.harness.peers import RoomPeer

log = logging.getLogger(__name__)

CLICKS = 52
JOINS = 20
WARMUP_S = 2.0
LOUD = 1000  # a sample this large (about -30 dBFS) is sound, not silence


def ours_mouth_to_ear(env: BenchRoom, clicks: int = CLICKS) -> dict[str, Any]:
    room = env.new_room()
    wav = write_click_wav(env.workdir / "clicks48k.wav")
    a = env.peer("a", room, tone=str(wav))
    b = env.peer("b", room, tone=None)
    sent, heard, mixed = OnsetDetector(), OnsetDetector(), OnsetDetector()
    a.session.mic = TapMic(a.session.mic, sent)  # type: ignore[assignment]
    b.session.mixer.sink = TapSink(b.session.mixer.sink, mixed)
    assert b.session.speaker is not None
    b.session.speaker.add_playout_listener(heard.playout_listener())  # type: ignore[attr-defined]
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_until(lambda: heard.onsets, 20, "the first click at B")
    time.sleep(WARMUP_S)
    start, wall_start = time.monotonic(), time.time()
    time.sleep(clicks * PERIOD_S)
    end, wall_end = time.monotonic(), time.time()
    time.sleep(0.5)  # the last clicks' way through

    def window(arrivals: list[float]) -> list[float]:
        return match_latencies([t for t in sent.onsets if start - 0.5 < t < end],
                               [t for t in arrivals if start < t < end])

    got, to_mixer = window(heard.onsets), window(mixed.onsets)
    stats = b.session.mixer.source_stats()
    env.drop_peer(b)
    env.drop_peer(a)
    return {"latencies_ms": [x * 1000 for x in got],
            "to_mixer_ms": [x * 1000 for x in to_mixer],
            "sent": len(sent.onsets),
            "heard": len(heard.onsets), "mixer": stats, "wall_window": (wall_start, wall_end)}


def ours_join(env: BenchRoom, member: RoomPeer, joins: int = JOINS) -> dict[str, Any]:
    joiner = env.peer("j", member.settings.room, tone="tone:660")
    loud: list[float] = []

    def listener(frame: PcmFrame, played_at: float) -> None:
        x = np.frombuffer(frame.samples, dtype="<i2")
        if len(x) and int(np.abs(x.astype(np.int32)).max()) >= LOUD:
            loud.append(played_at)

    assert joiner.session.speaker is not None
    joiner.session.speaker.add_playout_listener(listener)  # type: ignore[attr-defined]
    times: list[float] = []
    failures = 0
    for _ in range(joins):
        loud.clear()
        t0 = time.monotonic()
        try:
            joiner.call(lambda s: s.join(), timeout=20)
            t = wait_until(partial(since, loud, t0), 10, "remote audio")[0]
            times.append((t - t0) * 1000)
        except Exception as exc:
            failures += 1
            log.warning("join trial failed: %s", exc)
        joiner.call(lambda s: s.leave(), timeout=20)
        time.sleep(0.3)
    env.drop_peer(joiner)
    return {"join_ms": times, "failures": failures}


def _rows(name: str, values: list[float], ref: list[float] | None, ref_name: str,
          group: str, notes: str, extra: dict[str, Any]) -> list[Row]:
    rows = []
    for label, q in (("p50", 50), ("p95", 95)):
        rows.append(Row(group, f"{name} {label}", percentile(values, q), "ms",
                        percentile(ref, q) if ref else None, ref_name,
                        notes=notes if label == "p50" else "",
                        extra=extra if label == "p50" else {}))
    return rows


def run() -> list[Row]:
    from bench.chromium import ChromiumPair

    rows: list[Row] = []
    with BenchRoom("ba") as env:
        ref: dict[str, Any] = {}
        ref_error = ""
        with ChromiumPair(env, env.workdir / "chromium") as pair:
            try:  # the Chromium pair clicks all through our measurement window
                pair.start_clicks()
            except Exception as exc:
                log.exception("chromium reference failed")
                ref_error = f"chromium reference failed: {exc}"
            ours = ours_mouth_to_ear(env)
            if not ref_error:
                ref = pair.clicks_between(*ours["wall_window"])
        lat = ours["latencies_ms"]
        notes = f"n={len(lat)}" + (f", chromium n={len(ref['latencies_ms'])}" if ref else "")
        rows += _rows("audio mouth-to-ear", lat, ref.get("latencies_ms"), "chromium",
                      "audio", ref_error or notes, {"ours": ours, "chromium": ref})
        ready = ours["to_mixer_ms"]
        rows.append(Row("audio", "mouth-to-mixer-output p50", percentile(ready, 50), "ms",
                        percentile(ref.get("latencies_ms") or [], 50) if ref else None,
                        "chromium", notes="ours without the speaker's buffer (jitter "
                        "buffer, decode and mix happen as the speaker pulls)"))

        member = env.peer("m", env.new_room(), tone="tone:440")
        member.call(lambda s: s.join())
        jref: dict[str, Any] = {}
        jerr = ""
        with ChromiumPair(env, env.workdir / "chromium-join") as pair:
            # The page joins over and over while ours does: both see the same load.
            try:
                pair.start_joins(JOINS, feed=member.session._member_id,
                                 room=member.settings.room)
            except Exception as exc:
                log.exception("chromium join reference failed")
                jerr = f"chromium reference failed: {exc}"
            joins = ours_join(env, member)
            if not jerr:
                try:
                    jref = pair.join_times()
                except Exception as exc:
                    log.exception("chromium join reference failed")
                    jerr = f"chromium reference failed: {exc}"
        env.drop_peer(member)
        jn = f"n={len(joins['join_ms'])}, failed={joins['failures']}"
        if jref:
            jn += f", chromium n={len(jref['join_ms'])}"
        rows += _rows("join to first audio", joins["join_ms"], jref.get("join_ms"), "chromium",
                      "join", jerr or jn, {"ours": joins, "chromium": jref})
    return rows

"""Recovery: Janus killed (SIGKILL) and restarted; time until audio flows again.

Two in-process appliances: A sends a tone, B plays it. Each trial kills Janus, starts it
again at once, and measures from the kill to the first loud frame B's speaker plays
after Janus is back. The reference is the floor no client can beat: the time from the
kill until the restarted Janus listens again (measured in the same trial). Trials are
spaced so that each starts from a settled stay (the client's backoff starts over after a
good stay of 5 s).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import numpy as np

from bench.env import BenchRoom, percentile, since, wait_until
from bench.report import Row
from drivers.audio.base import PcmFrame

log = logging.getLogger(__name__)

TRIALS = 20
STAY_S = 5.5
LOUD = 1000


def measure(trials: int = TRIALS) -> dict[str, Any]:
    with BenchRoom("br") as env:
        room = env.new_room()
        a = env.peer("a", room, tone="tone:440")
        b = env.peer("b", room, tone=None)
        loud: list[float] = []

        def listener(frame: PcmFrame, played_at: float) -> None:
            x = np.frombuffer(frame.samples, dtype="<i2")
            if len(x) and int(np.abs(x.astype(np.int32)).max()) >= LOUD:
                loud.append(played_at)

        assert b.session.speaker is not None
        b.session.speaker.add_playout_listener(listener)  # type: ignore[attr-defined]
        a.call(lambda s: s.join())
        b.call(lambda s: s.join())
        wait_until(lambda: loud, 20, "audio before the first trial")
        recovered: list[float] = []
        server_up: list[float] = []
        failures = 0
        for _ in range(trials):
            time.sleep(STAY_S)
            t_kill = time.monotonic()
            env.janus.kill()
            env.janus.start()
            t_up = time.monotonic()
            try:
                t = wait_until(partial(since, loud, t_up), 30, "audio again")[0]
            except TimeoutError as exc:
                failures += 1
                log.warning("recovery trial: %s", exc)
                continue
            loud.clear()
            recovered.append((t - t_kill) * 1000)
            server_up.append((t_up - t_kill) * 1000)
        rejoins = (a.session.join_count, b.session.join_count)
    return {"recovered_ms": recovered, "janus_up_ms": server_up, "failures": failures,
            "joins": rejoins}


def run() -> list[Row]:
    m = measure()
    rec, up = m["recovered_ms"], m["janus_up_ms"]
    notes = f"n={len(rec)}, failed={m['failures']}"
    return [Row("recovery", f"audio back after Janus restart {label}", percentile(rec, q), "ms",
                percentile(up, q), "janus listening again", notes=notes if q == 50 else "",
                extra=m if q == 50 else {})
            for label, q in (("p50", 50), ("p95", 95))]


if __name__ == "__main__":
    import json

    print(json.dumps(measure(3), indent=2))

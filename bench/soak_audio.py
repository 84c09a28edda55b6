"""The soak's audio legs: clock drift for the whole run, and a clean stretch at the start.

- **Drift.** The appliance's sim mic and speaker run :data:`DRIFT_PPM` fast
  (``sim.mic_drift_ppm``, ``sim.speaker_drift_ppm``), the other member's as much slow,
  for the whole soak: each direction plays a voice whose clock is 2 x 100 ppm away from
  the card's (720 ms an hour), which the jitter buffers absorb by time-stretching. The
  playout delay of each side's jitter buffer is sampled with the rest; the median over
  the first and the last :data:`DRIFT_WINDOW_S` in the room (not in a leave/join) is
  compared. Goal: within 10 ms.
- **Clean stretch.** For the first :data:`CLEAN_MINUTES` the page does not leave and
  join and Janus is not restarted: the link is clean and steady, and neither side's
  jitter buffer nor the member's sim speaker may underrun. Goal: none.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.report import Row
from tests.harness.peers import RoomPeer

DRIFT_PPM = 100.0
CLEAN_MINUTES = 10.0
DRIFT_WINDOW_S = 60.0
GOAL_DRIFT_MS = 10.0


def appliance_sim_config() -> dict[str, Any]:
    return {"speaker_drift_ppm": DRIFT_PPM, "mic_drift_ppm": DRIFT_PPM}


def sample(status: dict[str, Any] | None, peer: RoomPeer) -> dict[str, Any]:
    """The audio figures of one moment: the box's (from its status), the member's."""
    members = ((status or {}).get("stats") or {}).get("members") or {}
    delays = [m.get("playout_delay_ms") for m in members.values()
              if m.get("playout_delay_ms") is not None]
    bufs = [s.buffer.stats() for s in peer.session.mixer._sources]
    speaker = peer.session.speaker
    return {
        "box_delay_ms": statistics.median(delays) if delays else None,
        "box_underruns": sum(int(m.get("underruns") or 0) for m in members.values()),
        "box_members": len(members),
        "member_delay_ms": statistics.median(b["delay_ms"] for b in bufs) if bufs else None,
        "member_underruns": sum(b["underruns"] for b in bufs),
        "member_speaker_underruns": int(speaker.stats.get("underruns", 0)) if speaker else 0,
    }


def clean_leg(samples: list[dict[str, Any]], clean_s: float) -> dict[str, Any]:
    """Underruns over the clean stretch (from the first sample in which the box has the
    member in its room, to the last one inside the stretch)."""
    inside = [s for s in samples if s["t"] <= clean_s and s.get("audio")]
    while inside and not inside[0]["audio"]["box_members"]:
        inside.pop(0)  # taken before the box met the member: not yet in its steady state
    if len(inside) < 2:
        return {"minutes": 0.0, "underruns": None}
    a, b = inside[0]["audio"], inside[-1]["audio"]
    keys = ("box_underruns", "member_underruns", "member_speaker_underruns")
    got = {k: b[k] - a[k] for k in keys}
    # A member that left and came back (it must not, here) resets the box's counters.
    steady = all(s["audio"]["box_members"] == a["box_members"] for s in inside)
    return {"minutes": (inside[-1]["t"] - inside[0]["t"]) / 60, "steady": steady, **got,
            "underruns": sum(got.values())}


def drift(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Each side's playout delay over the first and the last minute in the room."""
    steady = [s for s in samples if s.get("audio") and not s["changing_room"]]
    out: dict[str, Any] = {"ppm": DRIFT_PPM}
    if not steady:
        return out
    end = steady[-1]["t"]
    for side in ("box", "member"):
        key = f"{side}_delay_ms"

        def median(rows: list[dict[str, Any]], key: str = key) -> float | None:
            values = [r["audio"][key] for r in rows if r["audio"][key] is not None]
            return statistics.median(values) if values else None

        first = median([s for s in steady if s["t"] <= steady[0]["t"] + DRIFT_WINDOW_S])
        last = median([s for s in steady if s["t"] >= end - DRIFT_WINDOW_S])
        out[side] = {"start_ms": first, "end_ms": last,
                     "change_ms": None if first is None or last is None else last - first}
    return out


def rows(result: dict[str, Any]) -> list[Row]:
    out = []
    clean = result.get("clean_leg") or {}
    if clean:
        out.append(Row("soak", "underruns, clean link at the start", clean.get("underruns"),
                       "", 0.0, "goal", notes=(
                           f"{clean.get('minutes', 0):.1f} min; box jitter buffers "
                           f"{clean.get('box_underruns')}, member's "
                           f"{clean.get('member_underruns')}, member's speaker "
                           f"{clean.get('member_speaker_underruns')}")))
    d = result.get("drift") or {}
    for side in ("box", "member"):
        leg = d.get(side) or {}
        change = leg.get("change_ms")
        out.append(Row("soak", f"playout delay change, {side} (clocks +-{d.get('ppm', 0):.0f} ppm)",
                       None if change is None else abs(change), "ms", GOAL_DRIFT_MS, "goal",
                       notes=f"{leg.get('start_ms')} -> {leg.get('end_ms')} ms"))
    return out

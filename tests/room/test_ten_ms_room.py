"""Members sending 10 ms and 20 ms packets in one room, through a real Janus.

Box a sends 10 ms packets, boxes b and c 20 ms ones; each box's sim speaker pulls 20 ms
at a time. So c mixes a 10 ms member with a 20 ms one, and a 20 ms pull needs two of
a's packets at once. On a clean link no box may underrun on a's stream, and a's tone
is whole in every 20 ms window of what b and c played.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from services.room.opus_send import OpusSendSettings
from tests.harness.audio import continuity, tone_levels, wav_tail
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(150)]

LISTEN_S = 10.0


def member_stats(peer: Any, member: str) -> dict[str, Any]:
    stats: dict[str, Any] = peer.call(lambda s: s.mixer.source_stats())
    return stats[member]


def test_ten_and_twenty_ms_members_play_without_underruns(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440", opus=OpusSendSettings(frame_ms=10))
    b = make_peer("b", room_number, tone="tone:880")
    c = make_peer("c", room_number, tone="tone:660")
    for peer in (a, b, c):
        peer.call(lambda s: s.join())
    for peer, hz in ((b, 440), (c, 440), (c, 880), (a, 880), (a, 660)):
        wait_tone(peer.speaker_path, hz, timeout=30)
    a_id, b_id = a.session.local_id, b.session.local_id
    time.sleep(3.0)  # the buffers have learnt the link
    before = {name: member_stats(p, a_id) for name, p in (("b", b), ("c", c))}
    before_b = member_stats(c, b_id)
    time.sleep(LISTEN_S)
    after = {name: member_stats(p, a_id) for name, p in (("b", b), ("c", c))}
    after_b = member_stats(c, b_id)
    heard = {}
    for peer, hz in ((b, 440.0), (c, 440.0), (c, 880.0)):
        levels = tone_levels(wav_tail(peer.speaker_path, LISTEN_S), hz)
        share, longest = continuity(levels, float(np.median(levels)))
        heard[f"{peer.host.name}:{hz:.0f}"] = (round(100 * share, 2), longest * 20)
    print({"before": before, "after": after, "c_hears_b": (before_b, after_b),
           "continuity_pct_longest_gap_ms": heard})
    a_at = {name: after[name]["underruns"] - before[name]["underruns"] for name in after}
    b_at_c = after_b["underruns"] - before_b["underruns"]
    a_moved = {name: stretched_ms(before[name], after[name]) for name in after}
    b_moved = stretched_ms(before_b, after_b)
    print({"a_underruns": a_at, "b_underruns_at_c": b_at_c, "a_stretched_ms": a_moved,
           "b_stretched_ms_at_c": b_moved})
    # a's packets are 10 ms: two per pull, and the buffer plans for the second. Planned
    # for the first only, it kept stretching back and forth: 7.5 % of a's audio at a
    # load of 10, against 1.4-1.6 % now. A loaded test machine stalls both members
    # alike (b's 20 ms packets too), so a is measured against b over the same seconds.
    for name, count in a_at.items():
        assert count <= max(15, 2 * b_at_c + 5), (name, a_at, b_at_c, after)
        assert a_moved[name] <= b_moved + 250.0, (name, a_moved, b_moved)
    for key, (share_pct, _) in heard.items():
        assert share_pct >= 98.0, (key, heard)


def stretched_ms(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Audio added or removed by time-stretching between two stats (ms; 20 ms pulls)."""
    def total(stats: dict[str, Any]) -> float:
        return float(stats["stretched_pct"]) / 100 * int(stats["frames"]) * 20.0
    return total(after) - total(before)

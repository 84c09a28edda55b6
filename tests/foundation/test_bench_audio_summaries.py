"""The figures the audio benchmarks and the soak report, from samples made up here."""

from __future__ import annotations

from typing import Any

import pytest

from bench import soak_audio
from bench.voices_latency import _summary


def _sample(t: float, box: int, member: int, delay: float, changing: bool = False,
            members: int = 1) -> dict[str, Any]:
    return {"t": t, "changing_room": changing, "audio": {
        "box_delay_ms": delay, "box_underruns": box, "box_members": members,
        "member_delay_ms": delay + 1, "member_underruns": member,
        "member_speaker_underruns": 0}}


def test_the_clean_leg_counts_underruns_inside_it_only() -> None:
    samples = [_sample(0, 3, 1, 40), _sample(300, 3, 1, 40), _sample(590, 5, 2, 40),
               _sample(700, 50, 50, 40)]
    leg = soak_audio.clean_leg(samples, 600)
    assert leg["box_underruns"] == 2 and leg["member_underruns"] == 1
    assert leg["underruns"] == 3 and leg["steady"]
    assert leg["minutes"] == pytest.approx(590 / 60)


def test_the_clean_leg_starts_once_the_box_has_met_the_member() -> None:
    samples = [_sample(0, 0, 0, 40, members=0), _sample(10, 0, 0, 40),
               _sample(600, 4, 0, 40)]
    leg = soak_audio.clean_leg(samples, 600)
    assert leg["steady"] and leg["underruns"] == 4
    assert leg["minutes"] == pytest.approx(590 / 60)


def test_the_clean_leg_notices_a_member_that_came_and_went() -> None:
    samples = [_sample(0, 0, 0, 40), _sample(10, 0, 0, 40, members=0), _sample(20, 0, 0, 40)]
    assert not soak_audio.clean_leg(samples, 600)["steady"]


def test_drift_compares_the_first_and_last_minute_in_the_room() -> None:
    samples = [_sample(t, 0, 0, 40 + t / 100) for t in range(0, 1200, 10)]
    samples.append(_sample(1195, 0, 0, 999, changing=True))  # a rejoin: not counted
    d = soak_audio.drift(samples)
    assert d["box"]["start_ms"] == pytest.approx(40.3)
    assert d["box"]["end_ms"] == pytest.approx(40 + 11.6)
    assert d["box"]["change_ms"] == pytest.approx(11.3)
    assert d["member"]["change_ms"] == pytest.approx(11.3)
    assert [r.ours for r in soak_audio.rows({"drift": d})] == pytest.approx([11.3, 11.3])


def test_latency_summary_is_the_median_of_run_medians_and_a_pooled_p95() -> None:
    got = _summary([[10.0, 11.0, 12.0], [30.0, 31.0, 90.0], [], [20.0]])
    assert got["p50_ms"] == 20.0  # medians 11, 31, 20
    assert got["run_p50s_ms"] == [11.0, 31.0, 20.0]
    assert got["n"] == 7
    assert 31.0 < got["p95_ms"] <= 90.0

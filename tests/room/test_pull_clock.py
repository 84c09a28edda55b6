"""The card's schedule behind the speaker's pulls (:class:`services.room.pullgrid.PullClock`).

A late pull is timed when it was due, the pulls after it catch up, and the schedule
follows a card slower than the clock, starts again after the speaker rested, and
catches up with a card whose ring ran dry.
"""

from __future__ import annotations

import itertools

import pytest

from services.room.pullgrid import PullClock

RATE = 48_000
PULL = 960  # 20 ms
MS = 1e-3


def test_on_time_pulls_are_due_when_they_come() -> None:
    clock = PullClock(RATE)
    for k in range(50):
        now = 5.0 + k * 0.020 + (0.0003 if k % 3 else -0.0002)  # a thread's wake-up noise
        assert clock.due(now, PULL) == pytest.approx(now, abs=0.6 * MS)


def test_a_late_pull_is_due_on_the_schedule_and_the_next_ones_catch_up() -> None:
    clock = PullClock(RATE)
    for k in range(10):
        clock.due(k * 0.020, PULL)
    # pull 10 comes 45 ms late; 11 and 12 come at once after it; 13 on time
    assert clock.due(0.200 + 0.045, PULL) == pytest.approx(0.200, abs=1.1 * MS)
    assert clock.due(0.245, PULL) == pytest.approx(0.220, abs=2.1 * MS)
    assert clock.due(0.245, PULL) == pytest.approx(0.240, abs=3.1 * MS)
    assert clock.due(0.260, PULL) == 0.260


@pytest.mark.parametrize("ppm", [-1000, 1000, 5000])
def test_a_card_slower_or_faster_than_the_clock_is_followed(ppm: int) -> None:
    clock = PullClock(RATE)
    period = 0.020 / (1 + ppm * 1e-6)
    late = [now - clock.due(now, PULL) for now in (k * period for k in range(3000))]
    assert max(late) < 0.2 * MS


def test_after_the_speaker_rested_the_schedule_starts_again() -> None:
    clock = PullClock(RATE)
    for k in range(10):
        clock.due(k * 0.020, PULL)
    assert clock.due(2.5, PULL) == 2.5  # two seconds without a pull
    assert clock.due(2.52, PULL) == 2.52


def test_a_schedule_that_moved_is_caught_up_with() -> None:
    """The ring ran dry for 30 ms (less than a stall that starts the schedule again):
    the pulls after it come 30 ms later for good; within 30 pulls they are on time."""
    clock = PullClock(RATE)
    for k in range(10):
        clock.due(k * 0.020, PULL)
    late = [now - clock.due(now, PULL) for now in (0.230 + k * 0.020 for k in range(40))]
    assert late[0] == pytest.approx(0.030, abs=1.1 * MS)
    assert all(b <= a for a, b in itertools.pairwise(late))
    assert late[30] == 0.0


def test_a_card_that_pulls_in_bursts_has_no_late_pulls() -> None:
    """A sound server's buffer: five pulls at once every 100 ms. The first of each burst
    is not late; the pulls after it came early, so no schedule is kept."""
    clock = PullClock(RATE)
    times = [b * 0.100 + 0.0001 * i for b in range(20) for i in range(5)]
    assert all(clock.due(now, PULL) == now for now in times[5:])


def test_late_pulls_are_told_again_once_the_bursts_stop() -> None:
    clock = PullClock(RATE)
    for now in (0.0, 0.0, 0.0, 0.0, 0.020):  # a burst of four
        clock.due(now, PULL)
    assert clock.due(0.040 + 0.030, PULL) == 0.070  # a late pull, not told: bursts
    for k in range(4, 520):  # 10 s of regular pulls
        clock.due(k * 0.020, PULL)
    assert clock.due(520 * 0.020 + 0.030, PULL) == pytest.approx(520 * 0.020, abs=1.1 * MS)


def test_one_pull_soon_after_another_is_not_a_burst() -> None:
    """The very first pull came late (nothing to tell it by), the next on time."""
    clock = PullClock(RATE)
    clock.due(0.015, PULL)
    for k in range(1, 50):
        clock.due(k * 0.020, PULL)
    assert clock.due(50 * 0.020 + 0.030, PULL) == pytest.approx(50 * 0.020, abs=1.1 * MS)

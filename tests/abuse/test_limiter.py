"""The login limiter's bookkeeping on a clock the test moves: reservations, the global
budget and its window."""

from __future__ import annotations

from services.web.sessions import LoginLimiter
from tests.harness.clock import Clock


def test_reserved_attempts_count_while_their_check_runs() -> None:
    limiter = LoginLimiter(limit=5, global_limit=100, clock=Clock(1000.0))
    assert [limiter.reserve("a") for _ in range(5)] == [0] * 5
    assert limiter.reserve("a") == 1  # five checks in flight: ask again shortly
    assert limiter.reserve("b") == 0  # another address is not affected
    for _ in range(4):
        assert limiter.settle("a", ok=False) == 0
    assert limiter.settle("a", ok=False) == 600  # the fifth failure locks the address
    assert limiter.reserve("a") == 600
    assert limiter.refused == 2


def test_a_success_frees_the_address() -> None:
    limiter = LoginLimiter(limit=5, clock=Clock(1000.0))
    for _ in range(4):
        limiter.reserve("a")
        limiter.settle("a", ok=False)
    limiter.reserve("a")
    limiter.settle("a", ok=True)
    assert limiter.retry_after("a") == 0
    for _ in range(4):
        assert limiter.reserve("a") == 0
        limiter.settle("a", ok=False)
    assert limiter.retry_after("a") == 0


def test_the_global_budget_refuses_everyone_until_its_window_slides() -> None:
    clock = Clock(1000.0)
    limiter = LoginLimiter(limit=5, global_limit=20, clock=clock)
    for n in range(20):
        clock.now += 10
        assert limiter.reserve(f"10.0.0.{n}") == 0
        limiter.settle(f"10.0.0.{n}", ok=False)
    # The oldest failure was 190 s ago: 410 s until it leaves the 10-minute window.
    assert limiter.reserve("10.0.1.1") == 410
    clock.now += 409
    assert limiter.retry_after("10.0.1.1") == 1
    clock.now += 2
    assert limiter.reserve("10.0.1.1") == 0  # one failure aged out: one attempt more
    assert limiter.reserve("10.0.1.2") > 0


def test_reservations_count_toward_the_global_budget() -> None:
    limiter = LoginLimiter(limit=5, global_limit=3, clock=Clock(1000.0))
    assert [limiter.reserve(f"a{n}") for n in range(3)] == [0, 0, 0]
    assert limiter.reserve("a9") == 1
    for n in range(3):
        limiter.settle(f"a{n}", ok=True)  # right passwords do not use up the budget
    assert limiter.reserve("a9") == 0

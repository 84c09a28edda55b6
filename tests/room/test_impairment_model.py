"""The impairment lab's per-packet model (:mod:`tests.harness.impair`), on synthetic
packet streams: what it does to each packet, without a network."""

from __future__ import annotations

import itertools
import statistics

import pytest

from tests.harness.impair import Direction, Impairment


def stream(direction: Direction, count: int, every_s: float = 0.020,
           size: int = 200, offset: float = 0.0) -> list[float | None]:
    return [direction.departure(size, offset + i * every_s) for i in range(count)]


def test_clean_link_passes_everything_at_once() -> None:
    out = stream(Direction(), 100)
    assert out == [i * 0.020 for i in range(100)]


def test_delay_and_jitter_bounds_and_reordering() -> None:
    d = Direction(Impairment(delay_ms=30, jitter_ms=25, seed=1))
    sent = [i * 0.020 for i in range(2000)]
    out = [d.departure(100, t) for t in sent]
    delays = [o - t for o, t in zip(out, sent, strict=True) if o is not None]
    assert min(delays) >= 0.005 - 1e-9 and max(delays) <= 0.055 + 1e-9
    assert statistics.mean(delays) == pytest.approx(0.030, abs=0.002)
    assert sum(1 for a, b in itertools.pairwise(out) if b < a) > 50  # reordered


def test_random_loss_rate_and_seed() -> None:
    out = stream(Direction(Impairment(loss=0.1, seed=4)), 10000)
    assert out.count(None) / 10000 == pytest.approx(0.1, abs=0.015)
    assert out == stream(Direction(Impairment(loss=0.1, seed=4)), 10000)  # repeatable


def test_gilbert_elliott_loss_and_burst_length() -> None:
    imp = Impairment.bursty(0.03, mean_burst=3, seed=9)
    d = Direction(imp)
    out = stream(d, 50000)
    runs: list[int] = []
    for i, o in enumerate(out):
        if o is None:
            if i and out[i - 1] is None:
                runs[-1] += 1
            else:
                runs.append(1)
    assert out.count(None) / 50000 == pytest.approx(0.03, abs=0.006)
    assert statistics.mean(runs) == pytest.approx(3.0, abs=0.4)
    assert d.counters["burst"] == out.count(None)


def test_rate_cap_spaces_packets_and_drops_beyond_the_queue() -> None:
    # 1000-byte packets at 100 kbit/s take 80 ms each; offered every 20 ms.
    d = Direction(Impairment(rate_kbps=100, queue_ms=400))
    out = stream(d, 100, size=1000)
    sent = [o for o in out if o is not None]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(g == pytest.approx(0.080) for g in gaps)
    assert d.counters["queue"] > 50  # 4x too much: most are dropped
    assert max(o - i * 0.020 for i, o in enumerate(out) if o is not None) <= 0.400 + 0.080 + 1e-9


def test_periodic_and_one_off_outages() -> None:
    d = Direction(Impairment(outage=(1.0, 0.2)))
    out = stream(d, 150, every_s=0.01, offset=0.005)  # 1.5 s, off the edges
    lost = [i for i, o in enumerate(out) if o is None]
    assert lost == [*range(0, 20), *range(100, 120)]
    d = Direction()
    d.start_outage(0.5, 0.3)
    out = stream(d, 100, every_s=0.01, offset=0.005)
    assert [i for i, o in enumerate(out) if o is None] == list(range(50, 80))
    assert d.counters["outage"] == 30


def test_changed_impairment_applies_to_later_packets() -> None:
    d = Direction(Impairment(delay_ms=50))
    assert d.departure(100, 0.0) == pytest.approx(0.050)
    d.set(Impairment(delay_ms=5), now=1.0)
    assert d.departure(100, 1.0) == pytest.approx(1.005)


@pytest.mark.parametrize("bad", [
    {"loss": 1.5}, {"delay_ms": -1}, {"burst": (0.1, 0.0)}, {"rate_kbps": 0},
    {"outage": (1.0, 2.0)}, {"queue_ms": 0},
])
def test_bad_impairments_are_refused_with_the_field_named(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Impairment: "):
        Impairment(**bad)  # type: ignore[arg-type]


def test_round_trip_through_the_control_format() -> None:
    imp = Impairment(delay_ms=10, burst=(0.01, 0.3), outage=(5.0, 1.0), seed=3)
    assert Impairment.from_dict(imp.to_dict()) == imp

"""The impairment lab, checked with ping figures inside its namespaces, and media through it.

Loss draws are seeded and only the pings cross the impaired links, so what each test
sees is the same on every run; the bounds are also wide enough (at least 5 standard
deviations) to hold for any seed. Every ping lost is also accounted for, exactly, by the
forwarder's own counters.
"""

from __future__ import annotations

import itertools
import statistics
import threading

import pytest

from tests.harness.impair import CLEAN, Impairment
from tests.harness.impaired import PingResult, ping
from tests.harness.netns import Host, Network
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

_names = itertools.count(1)


def hosts(network: Network, up: Impairment, down: Impairment) -> tuple[Host, Host]:
    """A plain host on the bridge and an impaired one."""
    plain = network.add_host(f"p{next(_names)}")
    impaired = network.add_impaired_host(f"i{next(_names)}", up=up, down=down)
    return plain, impaired


def median(result: PingResult) -> float:
    return statistics.median(result.rtts.values())


def test_delay_adds_to_the_round_trip_and_changes_at_run_time(network: Network) -> None:
    plain, box = hosts(network, up=Impairment(delay_ms=30), down=Impairment(delay_ms=20))
    ping(plain.ns, box.ip, 1)  # ARP settled
    base = ping(network.add_host(f"p{next(_names)}").ns, plain.ip, 50)
    delayed = ping(box.ns, plain.ip, 50)
    reverse = ping(plain.ns, box.ip, 50)
    for result in (delayed, reverse):
        assert not result.lost, result
        assert min(result.rtts.values()) >= 50.0  # both legs, never less
        assert median(result) < 50.0 + median(base) + 10.0, (result, base)
    network.links[box.name].set(up=Impairment(delay_ms=5), down=CLEAN)
    shorter = ping(box.ns, plain.ip, 50)
    assert min(shorter.rtts.values()) >= 5.0
    assert median(shorter) < 5.0 + median(base) + 10.0, shorter


def test_jitter_spreads_the_round_trip(network: Network) -> None:
    plain, box = hosts(network, up=Impairment(delay_ms=30, jitter_ms=20, seed=3), down=CLEAN)
    result = ping(box.ns, plain.ip, 100)
    rtts = sorted(result.rtts.values())
    assert not result.lost
    assert rtts[0] >= 10.0  # 30 - 20
    assert rtts[-1] - rtts[0] > 20.0, rtts  # uniform over 40 ms
    assert statistics.median(rtts) < 50.0


def test_random_loss_in_each_direction(network: Network) -> None:
    up, down = Impairment(loss=0.10, seed=1), Impairment(loss=0.05, seed=2)
    plain, box = hosts(network, up=up, down=down)
    result = ping(box.ns, plain.ip, 400, interval=0.01)
    stats = network.links[box.name].stats()
    # Each ping crosses both directions once; a lost request has no reply to lose.
    assert len(result.lost) == stats["up"]["loss"] + stats["down"]["loss"]
    assert stats["up"]["in"] == 400
    # Expected 10 % of 400 up (sd 6) and 5 % of the rest down (sd 4.2).
    assert 10 <= stats["up"]["loss"] <= 70, stats
    assert 3 <= stats["down"]["loss"] <= 40, stats
    assert 0.05 <= len(result.lost) / 400 <= 0.25


def test_burst_loss_comes_in_runs(network: Network) -> None:
    burst = Impairment.bursty(0.08, mean_burst=4, seed=5)
    assert burst.expected_loss == pytest.approx(0.08)
    plain, box = hosts(network, up=burst, down=CLEAN)
    result = ping(box.ns, plain.ip, 1000, interval=0.005)
    stats = network.links[box.name].stats()
    assert len(result.lost) == stats["up"]["burst"]
    runs = result.runs()
    assert 0.02 <= len(result.lost) / 1000 <= 0.2, result
    # Random loss at 8 % would give runs of 1.09 packets on average.
    assert statistics.mean(len(r) for r in runs) >= 2.0, runs


def test_outage_drops_everything_for_its_length(network: Network) -> None:
    plain, box = hosts(network, up=CLEAN, down=CLEAN)
    link = network.links[box.name]
    ping(box.ns, plain.ip, 1)  # ARP settled
    before = link.stats()
    timer = threading.Timer(1.0, link.outage, args=(1.0,))
    timer.start()
    try:
        result = ping(box.ns, plain.ip, 150, interval=0.02)
    finally:
        timer.join()
    stats = link.stats()
    runs = result.runs()
    assert len(runs) == 1, runs  # one gap, nothing lost outside it
    dropped = sum(stats[d]["outage"] - before[d]["outage"] for d in ("up", "down"))
    assert len(result.lost) == dropped
    first, last = runs[0][0], runs[0][-1]
    gap = result.times[last + 1] - result.times[first - 1]
    assert 1.0 - 0.05 <= gap <= 1.0 + 0.5, gap
    # 1 s of pings 20 ms apart is 50, fewer when ping itself is late (a busy machine).
    assert len(runs[0]) >= 25


def test_bandwidth_cap_queues_then_drops(network: Network) -> None:
    # 1028-byte packets at 200 kbit/s take 41 ms each; 50 a second is 2x the cap.
    plain, box = hosts(network, up=Impairment(rate_kbps=200, queue_ms=300), down=CLEAN)
    result = ping(box.ns, plain.ip, 100, interval=0.02, size=1000)
    stats = network.links[box.name].stats()
    assert min(result.rtts.values()) >= 41.0
    assert max(result.rtts.values()) >= 250.0  # the queue filled up
    assert stats["up"]["queue"] > 20 and len(result.lost) == stats["up"]["queue"]
    assert stats["up"]["bytes"] * 8 / 1000 <= 200 * (100 * 0.02 + 1.0)  # never above cap


def test_box_behind_5pct_loss_still_hears_and_is_heard(make_peer, network, room_number):
    loss = Impairment(loss=0.05, seed=7)
    a = make_peer("a", room_number, tone="tone:440", up=loss, down=loss)
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(a.speaker_path, 880, timeout=20)
    wait_tone(b.speaker_path, 440, timeout=20)
    stats = network.links[a.host.name].stats()
    assert stats["up"]["loss"] > 0 and stats["down"]["loss"] > 0


def test_loss_stats_are_sane_under_5pct_loss(make_peer, network, room_number):
    loss = Impairment(loss=0.05, seed=11)
    a = make_peer("a", room_number, tone="tone:440", up=loss, down=loss)
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    b_id = b.session.local_id
    a.wait_for(lambda: len([d for d in a.names("stats") if b_id in d.get("members", {})])
               >= 12, timeout=30, what="12 s of stats")
    samples = [d for d in a.names("stats") if b_id in d.get("members", {})][2:]
    pcts = [d["up"]["loss_pct"] for d in samples]
    assert all(0.0 <= p <= 100.0 for p in pcts), pcts
    assert 1.0 <= statistics.mean(pcts) <= 15.0, pcts  # about 5
    last = samples[-1]
    assert last["up"]["packets_lost"] > 0, last
    assert last["members"][b_id]["packets_lost"] > 0, last


def test_appliance_behind_a_lossy_slow_link_carries_audio_both_ways(
        make_appliance, make_peer, janus, network, room_number):
    link = Impairment(delay_ms=40, jitter_ms=5, loss=0.05, seed=13)
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "web": {"listen": "127.0.0.1:8080"},
    }, up=link, down=link)
    peer = make_peer("b", room_number, tone="tone:880")
    peer.call(lambda s: s.join())
    try:
        wait_tone(peer.speaker_path, 440, timeout=30)
        wait_tone(app.speaker_wav, 880, timeout=20)
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise
    stats = network.links[app.host.name].stats()
    assert stats["up"]["loss"] > 0 and stats["down"]["loss"] > 0

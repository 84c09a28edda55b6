"""The jitter buffer driven by packet-arrival traces, on a simulated clock.

A 440 Hz tone is encoded by real libopus (in-band FEC on) into 20 ms packets. A trace
says when each packet arrives (or that it never does); a simulated sound card pulls
20 ms at its own pace, which may drift. Everything runs on one fake clock, so every
figure is exact and the test takes no wall time to speak of.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest

from services.audio.opus import OpusEncoder
from services.room.jitter import JitterBuffer
from services.room.stretch import accelerate, decelerate, find_period
from tests.harness.clock import Clock
from tests.harness.playout import Playout, play_trace

RATE = 48_000
FRAME = 960
HZ = 440.0


def tone(n: int, start: int = 0, hz: float = HZ) -> np.ndarray:
    t = (np.arange(n) + start) / RATE
    return (np.sin(2 * np.pi * hz * t) * 12000).astype(np.int16)


@cache
def packets(count: int = 3000) -> tuple[bytes, ...]:
    """``count`` 20 ms packets of the tone (60 s), with in-band FEC."""
    enc = OpusEncoder(bitrate=32000, fec=True, loss_pct=20)
    try:
        return tuple(enc.encode(tone(FRAME, i * FRAME)) for i in range(count))
    finally:
        enc.close()


def simulate(arrivals: dict[int, float], seconds: float, *, ppm: float = 0.0,
             pull: int = FRAME, transit: float = 0.002, **kw: float) -> Playout:
    """Packet ``i`` (sent at i*20 ms) arrives at ``arrivals[i]`` (absent: lost); the card
    pulls ``pull`` samples every ``pull/RATE`` s of its own clock (fast by ``ppm``)."""
    return play_trace(packets(), ((t + transit, i) for i, t in arrivals.items()), seconds,
                      frame=FRAME, pull=pull, ppm=ppm, ts_base=1000, **kw)


def steady(seconds: float, jitter: Callable[[int], float] = lambda i: 0.0) -> dict[int, float]:
    return {i: i * 0.02 + jitter(i) for i in range(int(seconds / 0.02))}


def windows_with_tone(out: np.ndarray, start_s: float = 0.5) -> float:
    """Share of 20 ms windows (after ``start_s``) whose level is within 6 dB of the tone."""
    x = out[int(start_s * RATE):].astype(np.float64)
    n = len(x) // FRAME
    blocks = x[: n * FRAME].reshape(n, FRAME)
    rms = np.sqrt((blocks ** 2).mean(axis=1))
    clean = 12000 / np.sqrt(2)
    return float((rms >= clean / 2).mean())


def test_clean_lan_stays_near_the_minimum_and_conceals_nothing() -> None:
    rng = random.Random(1)
    run = simulate(steady(10, lambda i: rng.uniform(0, 0.001)), 10)
    buf = run.buf
    assert buf.lost == buf.late == buf.underruns == buf.samples_concealed == 0
    assert buf.target_ms == pytest.approx(10.0)  # min_ms: about half a packet
    delays = run.delay_at(2, 10)
    assert max(delays) <= 10.0 + 20.0 and min(delays) >= 9.0
    assert np.mean(delays) < 22
    assert windows_with_tone(run.out) == 1.0
    assert buf.stats()["concealed_pct"] == 0.0


def test_reordered_packets_are_played_in_order() -> None:
    arrivals = steady(6)
    for i in range(10, 290, 7):  # every 7th packet comes 4 ms after the one behind it
        arrivals[i] = arrivals[i + 1] + 0.004
    run = simulate(arrivals, 6)
    # Only the first few, before the buffer had seen much reordering, can be too late.
    assert run.buf.late <= 3 and run.buf.lost == run.buf.late and run.buf.underruns == 0
    assert run.buf.target_ms >= 24 + 4
    # The output is the tone itself, sample for sample up to codec error and stretching:
    # its spectrum is one clean line.
    spectrum = np.abs(np.fft.rfft(run.out[RATE:].astype(np.float64)))
    freqs = np.fft.rfftfreq(len(run.out) - RATE, 1 / RATE)
    assert abs(freqs[int(np.argmax(spectrum))] - HZ) < 2
    assert windows_with_tone(run.out) == 1.0


def test_random_loss_is_concealed_from_the_next_packet() -> None:
    rng = random.Random(2)
    arrivals = {i: t for i, t in steady(20).items() if i < 5 or rng.random() >= 0.05}
    dropped = 1000 - len(arrivals)
    run = simulate(arrivals, 20)
    buf = run.buf
    assert dropped - 2 <= buf.lost <= dropped and dropped > 30  # the last may be pending
    # The next packet was there for nearly all of them: libopus decoded from it (FEC,
    # or its PLC when it carries none) or, where that came out too quiet on this tone,
    # the buffer repeated the last pitch period.
    assert buf.fec + buf.stats()["plc_replaced"] >= dropped * 0.8
    # A loss looks like an underrun until the next packet comes, when that comes later
    # than the delay: rarely, since the delay stays near a pull.
    assert buf.late == 0 and buf.underruns <= dropped // 10
    # (a steady tone is not voice to the encoder, so its packets carry no FEC data and
    # libopus conceals instead, fading for a packet or two: tests/audio_dsp/test_opus.py
    # checks FEC on voice)
    assert windows_with_tone(run.out) >= 0.94
    stats = buf.stats()
    assert 3.0 <= stats["concealed_pct"] <= 7.0 and stats["fec"] == buf.fec


def test_burst_loss_is_concealed_without_adding_delay() -> None:
    arrivals = steady(10)
    bursts = range(50, 500, 50)
    for start in bursts:
        for i in range(start, start + 3):
            del arrivals[i]
    run = simulate(arrivals, 10)
    buf = run.buf
    # Nothing comes for 60 ms: each burst is one underrun, concealed by PLC while it
    # lasts; the packet after it finds the gap already covered and plays on time.
    assert buf.lost == 3 * len(buf.underruns * [0]) == 3 * len(bursts)
    assert buf.samples_concealed == len(bursts) * 3 * FRAME
    assert max(run.delay_at(9, 10)) <= buf.target_ms + 21
    assert windows_with_tone(run.out) >= 0.93  # PLC fades over 60 ms


def test_jitter_step_raises_the_target_then_gives_it_back() -> None:
    rng = random.Random(3)

    def jitter(i: int) -> float:
        return rng.uniform(0.0, 0.06) if 250 <= i < 1000 else 0.0  # 5-20 s: 0-60 ms

    run = simulate(steady(35, jitter), 35)
    before = run.target_at(3, 5)
    during = run.target_at(8, 20)
    after = run.target_at(30, 35)
    assert max(before) <= 12
    assert min(during) >= 45 and max(during) <= 75
    assert max(after) <= 12
    # while jittery, the delay follows the target (up to a pull above it), little is
    # concealed
    assert 0 <= np.median(run.delay_at(10, 20)) - np.median(during) <= 20 + 5
    out = run.out
    assert windows_with_tone(out[int(10 * RATE): int(20 * RATE)], 0) >= 0.97
    # once calm, stretching brought the delay back down without gaps
    # (20 ms pulls: the least delay is the first pull at or after the target)
    assert np.median(run.delay_at(31, 35)) <= max(after) + 21
    assert windows_with_tone(out[int(24 * RATE):], 0) == 1.0
    assert run.buf.accelerated > 5 and run.buf.samples_stretched < 0.05 * run.buf.samples_out


@pytest.mark.parametrize("ppm", [1000.0, -1000.0])
def test_card_clock_drift_is_absorbed_by_stretching(ppm: float) -> None:
    run = simulate(steady(60), 60, ppm=ppm)
    buf = run.buf
    # no growth, no collapse: between the target and one pull (and a stretch) above it
    late = run.delay_at(5, 60)
    assert max(late) <= buf.target_ms + 20 + 10 + 1 and min(late) >= buf.target_ms - 3
    assert buf.samples_concealed == 0 and buf.lost == 0
    # 1000 ppm of 60 s is 60 ms that had to be added or removed, a few ms at a time
    moved = buf.samples_stretched / RATE
    assert 0.03 <= moved <= 0.2
    assert (buf.decelerated if ppm > 0 else buf.accelerated) >= 5
    assert windows_with_tone(run.out) == 1.0


@pytest.mark.parametrize("ppm", [1000.0, -1000.0])
def test_sender_clock_drift_is_absorbed_by_stretching(ppm: float) -> None:
    # The sender's crystal is off: its 20 ms packets come 20 ms / (1 + ppm) apart.
    period = 0.02 / (1 + ppm * 1e-6)
    run = simulate({i: i * period for i in range(int(58 / period))}, 58)
    buf = run.buf
    late = run.delay_at(5, 58)
    assert max(late) <= buf.target_ms + 20 + 10 + 1 and min(late) >= buf.target_ms - 3
    assert buf.samples_concealed == 0 and buf.lost == 0 and buf.dropped == 0
    moved = buf.samples_stretched / RATE
    assert 0.03 <= moved <= 0.2
    # a fast sender sends more than the card plays: shortened; a slow one: lengthened
    assert (buf.accelerated if ppm > 0 else buf.decelerated) >= 5
    assert windows_with_tone(run.out[: int(57 * RATE)]) == 1.0


def test_a_stall_is_concealed_and_the_delay_recovers() -> None:
    arrivals = steady(12)
    for i in range(200, 208):  # 160 ms without packets, then they all come at once
        arrivals[i] = 208 * 0.02
    run = simulate(arrivals, 12)
    buf = run.buf
    assert buf.underruns >= 1 and buf.late == 0
    assert buf.samples_concealed > 0.1 * RATE
    # back near the target within a second, shortening every packet while far over
    assert max(run.delay_at(5.2, 12)) <= buf.target_ms + 20 + 10 + 1
    assert windows_with_tone(run.out[int(5 * RATE):], 0) >= 0.97


def test_a_silent_sender_goes_quiet_and_comes_back() -> None:
    arrivals = {i: t for i, t in steady(8).items() if not 100 <= i < 200}
    run = simulate(arrivals, 8)
    assert run.silent_pulls > 80  # quiet, not 2 s of concealment
    assert run.buf.lost == 100  # counted once the stream came back
    assert windows_with_tone(run.out[int(4.3 * RATE):], 0) == 1.0


def test_late_packets_are_counted_and_dropped() -> None:
    arrivals = steady(4)
    for i in (50, 100, 150):
        arrivals[i] += 0.2  # long after its turn
    run = simulate(arrivals, 4)
    assert run.buf.late == 3 and run.buf.lost == 3
    # each was concealed with the next packet there: from its FEC data when it carries
    # some (these packets' FEC data stops after the first 35, see packets()), else by
    # repeating the last pitch period (libopus's PLC is weak on this SILK stream)
    assert run.buf.fec + run.buf.stats()["plc_replaced"] >= 3


def test_sequence_numbers_and_timestamps_wrap() -> None:
    clock = Clock()
    buf = JitterBuffer(clock=clock)
    pkts = packets()
    for i in range(40):
        clock.now = i * 0.02
        buf.put((0xFFF0 + i) & 0xFFFF, (0xFFFFF000 + i * FRAME) & 0xFFFFFFFF, pkts[i])
        assert buf.pull(FRAME) is not None or i < 2
    assert buf.lost == buf.late == buf.underruns == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_ms"):
        JitterBuffer(min_ms=50, max_ms=20)
    with pytest.raises(ValueError, match="percentile"):
        JitterBuffer(percentile=20)


def test_stretching_moves_by_one_period_without_a_click() -> None:
    block = tone(FRAME)
    period, match = find_period(block, RATE)
    assert match > 0.95
    assert abs(period / (RATE / HZ) - round(period / (RATE / HZ))) < 0.1  # whole periods
    short, long = accelerate(block, period), decelerate(block, period)
    assert len(short) == FRAME - period and len(long) == FRAME + period
    for out in (short, long):  # no jump bigger than the tone's own steepest step
        steepest = 12000 * 2 * np.pi * HZ / RATE
        assert np.abs(np.diff(out.astype(np.int32))).max() <= steepest * 1.2
    quiet = (tone(FRAME) // 1000).astype(np.int16)
    assert find_period(quiet, RATE) == (240, 1.0)
    with pytest.raises(ValueError):
        accelerate(block, FRAME)


def test_repeated_spikes_the_percentile_misses_raise_the_target() -> None:
    arrivals = steady(20)
    for i in range(100, 1000, 50):  # once a second a packet 80 ms late: 2 %, under p95
        arrivals[i] += 0.08
    run = simulate(arrivals, 20)
    buf = run.buf
    assert buf.jitter_ms < 5  # the percentile does not see them...
    assert min(run.target_at(5, 20)) >= 80  # ...but two misses in 10 s are a pattern
    assert buf.late + buf.underruns <= 4  # only the first ones were missed
    assert windows_with_tone(run.out[int(5 * RATE):], 0) == 1.0


def test_a_single_stall_does_not_hold_the_target_up() -> None:
    arrivals = steady(10)
    for i in range(100, 108):
        arrivals[i] = 108 * 0.02
    run = simulate(arrivals, 10)
    assert max(run.target_at(6.5, 10)) <= 12  # once the window has forgotten it


def test_loss_one_packet_after_another_keeps_the_level() -> None:
    # libopus's PLC all but stops (-25 dB) on a loss one good packet after another loss,
    # and the packet after comes back at half level; the buffer repeats the last pitch
    # period instead and merges the next packet in.
    arrivals = steady(10)
    for start in range(50, 500, 10):
        del arrivals[start]
        del arrivals[start + 2]
    run = simulate(arrivals, 10)
    assert run.buf.lost == 90 and run.buf.stats()["plc_replaced"] > 0
    assert windows_with_tone(run.out) >= 0.97  # was 0.72


def test_concealment_still_fades_when_the_sender_stops() -> None:
    arrivals = {i: t for i, t in steady(6).items() if not 100 <= i < 200}
    for i in (97,):  # a loss just before it stops, so the replacement is in use
        del arrivals[i]
    run = simulate(arrivals, 6)
    x = run.out[int(2.0 * RATE) + int(0.3 * RATE): int(3.9 * RATE)].astype(np.float64)
    assert np.sqrt((x ** 2).mean()) < 50  # quiet within 300 ms, not a held tone


def test_put_does_not_wait_for_a_pull_in_progress() -> None:
    """While the speaker thread is inside a pull (here: a decode that hangs), packets
    from the event loop are taken at once, and played in order once the pull is done."""
    import threading
    import time

    from services.audio.opus import OpusDecoder

    entered, release = threading.Event(), threading.Event()

    class SlowDecoder(OpusDecoder):
        def decode(self, payload: bytes) -> np.ndarray:
            entered.set()
            release.wait(10)
            return super().decode(payload)

    clock = Clock()
    buf = JitterBuffer(clock=clock, decoder=SlowDecoder)
    pkts = packets()
    for i in range(3):
        clock.now = i * 0.02
        buf.put(i, 1000 + i * FRAME, pkts[i])
    clock.now = 0.1
    puller = threading.Thread(target=buf.pull, args=(FRAME,))
    puller.start()
    assert entered.wait(5), "the pull never reached the decoder"
    started = time.monotonic()
    for i in range(3, 8):
        buf.put(i, 1000 + i * FRAME, pkts[i], arrival=i * 0.02)
    took = time.monotonic() - started
    release.set()
    puller.join(5)
    assert took < 0.5, f"put waited {took:.2f} s for the pull"
    assert buf.stats()["packets"] == 8
    played = [buf.pull(FRAME) for _ in range(7)]
    assert all(p is not None and len(p) == FRAME for p in played)
    stats = buf.stats()
    assert stats["late"] == 0 and stats["lost"] == 0 and stats["waiting"] == 0

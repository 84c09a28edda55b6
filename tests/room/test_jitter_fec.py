"""The jitter buffer keeps a packet of headroom for in-band FEC while it pays.

FEC rebuilds a lost packet from the next one, a packet time later. A receiver at the
default least target (10 ms) plays about 17-23 ms behind 20 ms packets, so most losses
were concealed before that next packet came. Once losses come whose next packet
carries LBRR data but came too late for it, the target holds one packet time more;
never on a clean link, never for a sender without FEC, never where the next packets
come in time anyway, and not once the losses stop.
"""

from __future__ import annotations

import random
from functools import cache

import numpy as np
import pytest

from drivers.audio.sim import TONE_AMPLITUDE
from services.room import jitter_target
from services.room.jitter import JitterBuffer
from services.room.jitter_target import FEC_WINDOW_S, DelayTarget
from services.room.opus_send import OpusSendEncoder, OpusSendSettings
from tests.harness.clock import Clock

RATE = 48_000
FRAME = 960


def target() -> DelayTarget:
    return DelayTarget(rate=RATE, min_ms=10.0, max_ms=300.0, margin_ms=4.0,
                       percentile=95.0, window_s=4.0)


def test_missed_fec_losses_add_one_packet_time_with_hysteresis() -> None:
    t = target()
    for i in range(100):  # 2 s of clean 20 ms packets, 3 ms of jitter
        t.arrived(i * FRAME, i * 0.02 + (i % 2) * 0.003)
    clean = t.target_ms
    assert 10.0 <= clean < 12.0 and t.fec_headroom_ms == 0
    t.lost(2.0, 20.0, fec=False, missed=True)
    t.lost(2.1, 20.0, fec=False, missed=True)
    assert t.fec_headroom_ms == 0  # no FEC data: nothing to wait for
    for k in range(5):
        t.lost(2.2 + k / 10, 20.0, fec=True, missed=False)
    assert t.fec_headroom_ms == 0  # its next packets came in time: it would not pay
    t.lost(2.8, 20.0, fec=True, missed=True)
    assert t.fec_headroom_ms == 0  # one missed loss is not a pattern yet
    t.lost(2.9, 20.0, fec=True, missed=True)
    assert t.fec_headroom_ms == 20.0
    assert t.target_ms == pytest.approx(t.jitter_ms + 20.0 + 4.0)
    # losses with FEC data keep it (now in time, thanks to it)
    now = 2.9 + FEC_WINDOW_S - 0.1
    t.lost(now, 20.0, fec=True, missed=False)
    assert t.fec_headroom_ms == 20.0
    for i in range(1, 600):  # then 12 s without a loss
        t.arrived(int((now + i * 0.02) * RATE), now + i * 0.02)
    assert t.fec_headroom_ms == 0 and t.target_ms < 12.0
    t.lost(20.0, 120.0, fec=True, missed=True)
    t.lost(20.1, 120.0, fec=True, missed=True)
    assert t.fec_headroom_ms == jitter_target.FEC_MAX_FRAME_MS  # bounded


def tone(n: int, start: int) -> np.ndarray:
    t = (np.arange(n) + start) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 32767 * TONE_AMPLITUDE).astype(np.int16)


@cache
def stream(fec: bool, seconds: float = 12.0) -> tuple[bytes, ...]:
    """The sim mic's tone through the mic's own encoder, told to expect 10 % loss."""
    enc = OpusSendEncoder(OpusSendSettings(fec=fec))
    enc.set_expected_loss(10)
    try:
        return tuple(p.data for i in range(int(seconds * 50))
                     for p in enc.encode(tone(FRAME, i * FRAME).tobytes()))
    finally:
        enc.close()


def play(packets: tuple[bytes, ...], loss: float, seed: int = 5) -> dict[str, float]:
    """Through a link losing ``loss`` with 0-6 ms of jitter, into a buffer at the
    appliance's defaults, pulled every 20 ms (off the packets' grid)."""
    rng = random.Random(seed)
    events = sorted((i * 0.02 + rng.uniform(0, 0.006), i) for i in range(len(packets))
                    if i < 5 or rng.random() >= loss)
    clock = Clock()
    buf = JitterBuffer(clock=clock)
    t, e, headroom = 0.0117, 0, 0.0
    while t < len(packets) * 0.02:
        while e < len(events) and events[e][0] <= t:
            clock.now, i = events[e]
            buf.put(i & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, packets[i])
            e += 1
        clock.now = t
        buf.pull(FRAME)
        headroom = max(headroom, buf.stats()["fec_headroom_ms"])
        t += 0.02
    return buf.stats() | {"most_headroom_ms": headroom}


def test_the_default_receiver_rebuilds_losses_from_fec() -> None:
    got = play(stream(True), 0.10)
    assert got["lost"] > 30, got
    # (54 of 61 here, 8 underruns; with no headroom none of 61, 56 underruns)
    assert got["fec"] >= 0.8 * got["lost"], got
    assert got["underruns"] < 0.25 * got["lost"], got
    assert got["most_headroom_ms"] == 20.0, got


def test_without_the_headroom_most_losses_are_concealed(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(jitter_target, "FEC_ENTER_LOSSES", 10**6)
    got = play(stream(True), 0.10)
    assert got["lost"] > 30 and got["fec"] < 0.5 * got["lost"], got


def test_no_headroom_on_a_clean_link_or_without_fec() -> None:
    clean = play(stream(True), 0.0)
    assert clean["lost"] == 0 and clean["most_headroom_ms"] == 0, clean
    assert clean["target_ms"] < 12.0, clean
    off = play(stream(False), 0.10)
    assert off["lost"] > 30 and off["fec"] == 0 and off["most_headroom_ms"] == 0, off
    assert off["concealed_pct"] > 0, off


def test_losses_rebuilt_from_fec_are_not_counted_as_concealed() -> None:
    """FEC data is decoded audio (as in WebRTC's ``concealedSamples``): what is left as
    concealed is the losses FEC could not rebuild and the underruns."""
    packets = stream(True)
    got = play(packets, 0.10)
    rebuilt_pct = 100 * got["fec"] / len(packets)  # one packet's audio per rebuilt loss
    assert got["fec"] >= 0.8 * got["lost"], got
    assert 0 < got["concealed_pct"] < rebuilt_pct, (rebuilt_pct, got)

"""Through a real Janus: the loss the room server reports reaches the sender's Opus
encoder, and the receiving box rebuilds lost packets from the FEC it then sends.

Box A sends a tone over an uplink that loses 10 % of its packets (the impairment lab);
Janus's receiver reports tell A, whose encoder plans its in-band FEC for that loss
(what libopus then puts in the packets is checked in tests/room/test_opus_send.py).
Box B, on a clean link, hears the tone and takes lost packets from the next one's FEC.
A box sending 10 ms packets is heard as well, with no jitter of its own making.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.room.opus_send import OpusSendSettings
from tests.harness.impair import CLEAN, Impairment
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]

#: Losses at the receiver without one FEC recovery that fail the test.
LOSSES = 60
#: The receiver's least delay: more than one 20 ms packet, and the loaded machine's jitter.
FEC_LEAD_MS = 40.0


def test_reported_loss_turns_on_fec_and_the_receiver_uses_it(make_peer, network,
                                                             room_number):
    a = make_peer("a", room_number, tone="tone:440", opus=OpusSendSettings(fec=True),
                  up=Impairment(loss=0.10, seed=21), down=CLEAN)
    # FEC rebuilds a lost packet from the next one, so that one must be there when the
    # lost one is due: B holds at least 40 ms (``audio.jitter_min_ms``). At the default
    # 10 ms B plays about 17-23 ms behind the packets; on a loaded machine, below the
    # 20 ms between two packets, every loss was concealed (PLC) before its next packet
    # came, and no FEC was used in 60 losses.
    b = make_peer("b", room_number, tone="tone:880", jitter_min_ms=FEC_LEAD_MS)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)
    a_id = a.session.local_id

    def expected_loss() -> int:
        stats = a.names("stats")
        return (stats[-1]["up"].get("fec_expected_loss_pct") or 0) if stats else 0

    a.wait_for(lambda: 4 <= expected_loss() <= 20, timeout=30,
               what="the encoder to expect the reported loss (about 10 %)")

    def playout() -> dict[str, Any]:
        """B's jitter buffer for A: packets lost and rebuilt from FEC so far."""
        return b.call(lambda s: s.mixer.source_stats()).get(a_id) or {}

    # Counted in losses, not seconds: a loaded machine delays them, it does not make
    # them fewer (60 take about 12 s at 10 % of 50 packets a second).
    lost0 = playout().get("lost", 0)  # from here on A's packets carry FEC
    seen = b.wait_for(
        lambda: (lambda p: p if p.get("fec") or p.get("lost", 0) - lost0 >= LOSSES
                 else None)(playout()),
        timeout=90, what=f"a FEC recovery or {LOSSES} losses at the receiver")
    assert seen.get("fec", 0) > 0, \
        f"{seen.get('lost', 0) - lost0} packets lost since FEC was on, none rebuilt: {seen}"
    stats = network.links[a.host.name].stats()
    assert stats["up"]["loss"] > 0 and stats["down"]["loss"] == 0


def test_ten_ms_packets_are_heard_through_the_room(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440", opus=OpusSendSettings(frame_ms=10))
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    a_id = a.session.local_id
    with_a = b.wait_for(
        lambda: [d["members"][a_id] for d in b.names("stats")
                 if (d.get("members", {}).get(a_id) or {}).get("delay_ms") is not None][4:],
        timeout=30, what="5 s of stats about a")
    last = with_a[-1]
    assert last["bitrate_kbps"] > 0, with_a
    # The sim mic gives 20 ms frames: their two packets go out 10 ms apart, not in a
    # pair the receiver would measure as 10 ms of RTP jitter (it did, 9.7-9.8 ms).
    assert last["jitter_ms"] < 5.0, with_a

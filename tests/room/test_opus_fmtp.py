"""The box declares Opus in-band FEC (``useinbandfec=1``) as Chromium does, in what it
offers Janus and in what it answers Janus's offers, and Janus agrees to it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack

from services.room.negotiation import offer_opus
from services.room.rtc import new_pc

T = 10.0


def opus_fmtp(sdp: str) -> dict[str, str]:
    """The ``a=fmtp`` parameters of the Opus payload type in ``sdp``'s audio section."""
    audio = sdp.split("m=audio", 1)[1].split("\nm=", 1)[0]
    pt = re.search(r"a=rtpmap:(\d+) opus/48000", audio, re.IGNORECASE)
    assert pt, audio
    line = re.search(rf"a=fmtp:{pt.group(1)} (\S+)", audio)
    if line is None:
        return {}
    return dict(kv.split("=", 1) for kv in line.group(1).split(";"))


async def test_the_offer_declares_in_band_fec() -> None:
    pc = new_pc("test")
    try:
        offer_opus(pc.addTransceiver(AudioStreamTrack(), direction="sendonly"))
        offer = await asyncio.wait_for(pc.createOffer(), T)
    finally:
        await asyncio.wait_for(pc.close(), T)
    fmtp = opus_fmtp(offer.sdp)
    assert fmtp.get("useinbandfec") == "1" and fmtp.get("minptime") == "10", offer.sdp


@pytest.mark.janus
@pytest.mark.timeout(90)
def test_janus_sees_and_agrees_to_in_band_fec(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440")
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())

    def descriptions(session: Any) -> dict[str, tuple[str, str]] | None:
        """Both connections' (local, remote) SDP, once both are connected (a's track
        reaches b's mixer while b's answer is still being made)."""
        pcs = session._backend.peer_connections()
        if set(pcs) != {"publisher", "subscriber"} or any(
                pc.connectionState != "connected" for pc in pcs.values()):
            return None
        return {label: (pc.localDescription.sdp, pc.remoteDescription.sdp)
                for label, pc in pcs.items()}

    sdps = b.wait_for(lambda: b.call(descriptions), timeout=30, what="b's connections up")
    offer, answer = sdps["publisher"]  # ours to Janus, Janus's reply
    assert opus_fmtp(offer).get("useinbandfec") == "1", offer
    assert opus_fmtp(answer).get("useinbandfec") == "1", answer
    ours, janus_offer = sdps["subscriber"]  # Janus's offer of a's audio, our answer
    assert opus_fmtp(janus_offer).get("useinbandfec") == "1", janus_offer
    assert opus_fmtp(ours).get("useinbandfec") == "1", ours

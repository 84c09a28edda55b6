"""The mic's audio leaves the box without its event loop.

A box publishes its sim mic's tone into a real Janus (in a namespace); a member plays
what it receives into its sim speaker. The test blocks the box's event loop for
:data:`STALL_S` (a blocking call in a loop callback, what a slow disk write or a stuck
driver call would do) and shows that the member keeps hearing the box's tone through the
stall: each mic frame is gated, encoded, packetized, protected and sent on the box's
``audio-send`` thread, fed by the mic's capture thread. When the audio went through the
loop, the member heard a gap as long as the stall.

Two boxes: a plain room member (its own sim mic) and the appliance's way, the shared
mic's tee of the media service (frames reach the room's branch on the capture thread;
the tee's other users still get them on the loop).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.audio.sim import SimSpeaker
from services.media.service import MediaService
from services.room.api import Controls, RoomState
from services.room.context import RoomSettings
from services.room.session import JanusRoomSession
from tests.harness.audio import continuity, tone_levels, wav_tail
from tests.harness.netns import Network, NsLoop
from tests.harness.stall import block_loop
from tests.media.helpers import Events, make_service
from tests.room.conftest import wait_tone

# the test blocks the box's loop on purpose: the loop guard would (rightly) fail it
pytestmark = [pytest.mark.janus, pytest.mark.timeout(150), pytest.mark.loop_guard_off]

STALL_S = 1.5
#: Longest run of 20 ms windows without the tone the member may hear around the stall:
#: less than its jitter buffer covers (a stall heard through the loop is ~75 windows).
MAX_GAP_WINDOWS = 10


def _heard_through_stall(member: Any, session: JanusRoomSession, loop: Any) -> Any:
    """Stall the box's loop while the member listens; returns the box's audio sink."""
    wait_tone(member.speaker_path, 440, timeout=30)
    time.sleep(2.0)  # a steady call, the member's jitter buffer settled
    pc = session._backend.pub_pc  # type: ignore[union-attr]
    [sender] = [s for s in pc.getSenders() if s.kind == "audio"]
    sink = getattr(sender, "rtp_sink", None)
    packets = sink.packets if sink is not None else 0

    began, ended = block_loop(loop, STALL_S)
    during = (sink.packets if sink is not None else 0) - packets

    time.sleep(2.0)  # the member plays out what arrived through and after the stall
    tail_s = time.monotonic() - began + 1.0
    levels = tone_levels(wav_tail(member.speaker_path, tail_s), 440)
    clean = float(np.median(levels[: 40]))  # the second before the stall
    share, longest = continuity(levels, clean)
    assert clean > 0.05, f"no tone before the stall (level {clean:.3f})"
    assert longest <= MAX_GAP_WINDOWS, (
        f"the member heard a {longest * 20} ms gap in the box's tone around a "
        f"{STALL_S} s stall of the box's loop ({share:.1%} of windows with the tone)")
    # sent on the audio-send thread while the loop was blocked (50 packets/s)
    assert sink is not None and sink.threads == {"audio-send"}, sink
    assert during >= 0.8 * 50 * (ended - began), (during, ended - began)
    assert sink.failed is None and sink.send_errors == 0, sink
    return sink


def test_audio_keeps_flowing_while_the_box_loop_is_blocked(make_peer: Any,
                                                          room_number: int) -> None:
    box = make_peer("box", room_number, tone="tone:440")
    member = make_peer("member", room_number, tone=None)
    box.call(lambda s: s.join())
    member.call(lambda s: s.join())
    sink = _heard_through_stall(member, box.session, box.loop.loop)
    box.call(lambda s: s.leave(), timeout=10)
    assert sink._closed


def _media_box(network: Network, url: str, room: int, tmp_path: Path,
               events: Events) -> tuple[NsLoop, MediaService, JanusRoomSession]:
    loop = NsLoop(network.add_host("box"))

    async def build() -> tuple[MediaService, JanusRoomSession]:
        media = make_service(tmp_path, events)
        settings = RoomSettings(url=url, room=room, display="box")
        session = JanusRoomSession(settings, mic=media.mic_for_room(),
                                   speaker=SimSpeaker(tmp_path / "box-speaker.wav"),
                                   emit=events, controls=Controls())
        return media, session

    media, session = loop.run(build())
    return loop, media, session


def test_shared_mic_audio_keeps_flowing_while_the_box_loop_is_blocked(
        network: Network, janus: Any, make_peer: Any, room_number: int,
        tmp_path: Path) -> None:
    events = Events()
    loop, media, session = _media_box(network, janus.url, room_number, tmp_path, events)
    member = make_peer("member", room_number, tone=None)
    try:
        loop.run(session.join(), 30)
        assert session.state == RoomState.IN_ROOM
        member.call(lambda s: s.join())
        tee = media.mic
        assert tee is not None
        sink = _heard_through_stall(member, session, loop.loop)
        assert tee._threaded and tee._task is None  # no loop pump while only the room reads
        assert tee.level_dbfs > -20  # the level meter's value, measured on the thread
        loop.run(session.leave(), 10)
        assert sink._closed
    finally:
        try:
            loop.run(session.close(), 10)
            loop.run(media.close(), 10)
        finally:
            loop.close()

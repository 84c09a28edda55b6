"""Buttons on mock pins drive a whole appliance in a room on a real Janus.

The appliance runs in-process (full wiring: room client, sim mic and speaker, web,
GPIO, serial) inside its own network namespace; a room peer in another namespace
listens to what it sends. LED pins are read straight from the mock pin factory.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from device.state import ApplianceState
from tests.control.boxes import TONE, make_box  # noqa: F401  (fixture)
from tests.harness.audio import rms, wav_tail
from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    janus,
    make_peer,
    network,
    room_number,
)
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]

BUTTONS = {"call": 17, "mute": 27, "vol_up": 23, "vol_down": 24, "camera": 26, "hand": 25}


def box_member(peer: Any) -> Any:
    return next((m for m in peer.session.members() if m.display == "box"), None)


def test_call_mute_and_volume_buttons(make_box, make_peer, room_number) -> None:  # noqa: F811
    box = make_box(room_number, {"buttons": BUTTONS, "volume_target": "mic"})
    peer = make_peer("peer", room_number, tone=None)
    peer.call(lambda s: s.join())
    # Idle: the status LED beats; the call button joins.
    assert box.led_pattern("status") == "heartbeat"
    box.click("call")
    peer.wait_for(lambda: box_member(peer), timeout=30, what="the box in the room")
    box.wait(lambda: box.app.state.state == ApplianceState.IN_ROOM, what="in_room")
    # the LEDs follow the state on the loop: wait for the pattern itself (the joining
    # blink is lit half the time, so a lit LED alone can still be the blink)
    box.wait(lambda: box.led_pattern("status") == "on", what="status LED steady on")
    assert box.led("status").state == 1.0
    wait_tone(peer.speaker_path, TONE)
    assert box.led("mute").state == 0.0

    # Mute silences what the peer hears; mute again brings the tone back.
    box.click("mute")
    wait_tone(peer.speaker_path, TONE, present=False)
    box.wait(lambda: box.led("mute").state == 1.0, what="mute LED on")
    box.click("mute")
    wait_tone(peer.speaker_path, TONE)
    box.wait(lambda: box.led("mute").state == 0.0, what="mute LED off")

    # vol_down held: one step per press and auto-repeat; the peer receives less.
    time.sleep(1.0)
    before = rms(wav_tail(peer.speaker_path, 1.0))
    box.press("vol_down")
    box.wait(lambda: box.app.room.controls.mic_volume <= 30, what="mic volume down")
    box.release("vol_down")
    volume = box.app.room.controls.mic_volume
    assert volume <= 30 and volume % 5 == 0
    time.sleep(1.5)
    after = rms(wav_tail(peer.speaker_path, 1.0))
    assert after < before * 0.5, (before, after)
    wait_tone(peer.speaker_path, TONE)  # quieter, still the tone
    box.click("vol_up")
    box.wait(lambda: box.app.room.controls.mic_volume == volume + 5, what="one step up")

    # hand raises a hand in the room, and lowers it again.
    box_id = box_member(peer).id
    box.click("hand")
    peer.wait_event("hand", lambda d: d["id"] == box_id and d["raised"], 15)
    box.click("hand")
    peer.wait_event("hand", lambda d: d["id"] == box_id and not d["raised"], 15)

    # The call button leaves.
    box.click("call")
    peer.wait_for(lambda: box_member(peer) is None, timeout=20, what="the box gone")
    box.wait(lambda: box.app.state.state == ApplianceState.IDLE, what="idle")
    box.wait(lambda: box.led_pattern("status") == "heartbeat", what="heartbeat")


def test_ptt_mic_live_only_while_held(make_box, make_peer, room_number) -> None:  # noqa: F811
    box = make_box(room_number, {"buttons": {"ptt": 22, "call": 17}},
                   auto_join=True)
    peer = make_peer("peer", room_number, tone=None)
    peer.call(lambda s: s.join())
    peer.wait_for(lambda: box_member(peer), timeout=30, what="the box in the room")
    box.wait(lambda: not box.app.room.controls.mic_enabled, what="mic muted by ptt mode")
    time.sleep(1.5)
    wait_tone(peer.speaker_path, TONE, present=False)
    box.press("ptt")
    wait_tone(peer.speaker_path, TONE)
    box.wait(lambda: box.led("mute").state == 0.0, what="mute LED off while talking")
    box.release("ptt")
    wait_tone(peer.speaker_path, TONE, present=False)
    assert box.led("mute").state == 1.0


def test_camera_privacy_button(make_box, make_peer, room_number) -> None:  # noqa: F811
    box = make_box(room_number, {"buttons": {"camera": 26}, "leds": {"camera": 12}},
                   auto_join=True, video={"enabled": True, "width": 160, "height": 120,
                                          "fps": 5})
    peer = make_peer("peer", room_number, tone=None, collect_video=True)
    peer.call(lambda s: s.join())
    box_id = peer.wait_for(lambda: (m := box_member(peer)) and m.has_video and m.id,
                           timeout=30, what="the box's camera in the room")

    def frames() -> int:
        return len(peer.video_numbers.get(box_id, []))

    peer.wait_for(lambda: frames() > 3, timeout=30, what="frames of the box's camera")
    assert box.led("camera").state == 0.0
    box.click("camera")
    box.wait(lambda: not box.app.room.controls.video_enabled, what="video off")
    box.wait(lambda: box.led("camera").state == 1.0, what="camera LED on")
    time.sleep(1.0)  # frames already on their way
    stopped_at = frames()
    time.sleep(2.0)
    assert frames() == stopped_at, "frames kept coming with the camera off"
    box.click("camera")
    peer.wait_for(lambda: frames() > stopped_at + 3, timeout=30,
                  what="frames of the box's camera again")
    box.wait(lambda: box.led("camera").state == 0.0, what="camera LED off")

"""Playbacks, announcements, input sensitivity, devices and the camera over the serial
line, against an appliance in a real Janus room; a room peer hears the results."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.control.boxes import TONE, make_box  # noqa: F401  (fixture)
from tests.control.support import Pty
from tests.control.test_serial_room import Av, W
from tests.harness.audio import rms, wav_tail
from tests.harness.fixtures import janus, make_peer, network, room_number  # noqa: F401
from tests.room.conftest import wait_tone
from tests.room.test_playback_room import write_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "ttyAV")
    yield p
    p.close()


def test_playback_device_and_sensitivity_commands(make_box, make_peer, room_number,  # noqa: F811
                                                  pty) -> None:
    box = make_box(room_number, {"leds": {"status": 5, "mute": 6, "level": 13}},
                   auto_join=True, serial={"port": str(pty.link)})
    write_tone(box.state_dir / "chime.wav", 1200, 20.0)
    av = Av(pty)
    assert av.read_line(W).startswith("EV ready version=")
    peer = make_peer("peer", room_number, tone=None)
    peer.call(lambda s: s.join())
    wait_tone(peer.speaker_path, TONE, timeout=40)

    # A file into the room: heard by the member along with the mic.
    reply = av.ask("PLAY ROOM FILE chime.wav")
    assert reply == "OK PLAY pb1 kind=file destination=room volume=100 state=playing", reply
    av.ev("EV playback-started ", "id=pb1", "source=chime.wav")
    wait_tone(peer.speaker_path, 1200, threshold=0.2)
    av.send("PLAYBACKS?\r\n")
    listed = av.reply(W)
    assert listed[0] == "OK PLAYBACKS 1", listed
    while not (line := av.read_line(W)).startswith("PLAYBACK "):  # the listing follows
        av.events.append(line)
    listed.append(line)
    assert re.fullmatch(r"PLAYBACK id=pb1 kind=file destination=room volume=100 "
                        r"state=playing position=[\d.]+ source=chime.wav", listed[1]), listed
    assert av.ask("PLAYBACK pb1 PAUSE") == "OK PLAYBACK pb1 state=paused volume=100"
    av.ev("EV playback-updated ", "id=pb1", "state=paused")
    wait_tone(peer.speaker_path, 1200, present=False, window=0.5, threshold=0.2)
    assert av.ask("PLAYBACK pb1 RESUME") == "OK PLAYBACK pb1 state=playing volume=100"
    assert av.ask("PLAYBACK pb1 VOLUME 40") == "OK PLAYBACK pb1 state=playing volume=40"
    assert av.ask("STOPPLAY ALL") == "OK STOPPLAY ALL stopped=1"
    av.ev("EV playback-ended ", "id=pb1", "reason=stopped")
    assert av.ask("STOPPLAY pb1") == "ERR NO_SUCH_PLAYBACK no playback 'pb1'"
    assert av.ask("PLAY ROOM FILE ../x.wav").startswith("ERR BAD_ARGUMENT file must be inside")
    assert av.ask("PLAY LOUD FILE chime.wav").startswith("ERR BAD_ARGUMENT usage: PLAY")

    # Spoken text on the box's own speaker (the member sends silence).
    assert rms(wav_tail(box.speaker_wav, 1.0)) < 0.001
    assert av.ask("PLAY SPEAKER TEXT Hello   from the front desk").startswith("OK PLAY pb2 ")
    av.ev("EV playback-started ", "id=pb2", 'source="Hello   from the front desk"')
    av.ev("EV playback-ended ", "id=pb2", "reason=finished")
    assert rms(wav_tail(box.speaker_wav, 3.0)) > 0.01

    # An announcement from the member: spoken on the box's speaker.
    peer.call(lambda s: s.send_custom("announce", {"text": "Your taxi is here"}))
    av.ev("EV playback-started ", "id=pb3", "kind=text", "destination=speaker")
    av.ev("EV playback-ended ", "id=pb3", "reason=finished")
    speech = wav_tail(box.speaker_wav, 3.0)
    assert rms(speech) > 0.01 and np.abs(speech).max() < 1.0

    # Input sensitivity: the sim tone (about -9 dBFS) is talking at the default 50
    # (-40 dBFS); a silent mic is not. The level LED follows.
    av.ev("EV talking ", "id=local", "talking=on")
    box.wait(lambda: box.led("level").state == 1.0, what="level LED on")
    assert av.ask("DEVICE MIC silence") == "OK DEVICE MIC silence live=on"
    av.ev("EV talking ", "id=local", "talking=off")
    box.wait(lambda: box.led("level").state == 0.0, what="level LED off")
    assert av.ask("DEVICE MIC tone:440") == "OK DEVICE MIC tone:440 live=on"
    av.ev("EV talking ", "id=local", "talking=on")
    assert av.ask("SENSITIVITY 70") == "OK SENSITIVITY 70 threshold_dbfs=-52"
    av.ev("EV sensitivity ", "sensitivity=70")
    assert av.ask("SENSITIVITY?") == "OK SENSITIVITY 70 threshold_dbfs=-52"
    assert av.ask("SENSITIVITY 101") == "ERR BAD_ARGUMENT sensitivity must be a number " \
                                        "0-100, got 101"

    # Devices, live: the member hears the new mic.
    assert av.ask("DEVICE MIC tone:660") == "OK DEVICE MIC tone:660 live=on"
    av.ev("EV devices-updated ", "kind=mic", "from=tone:440", "to=tone:660", "reason=chosen",
          "live=on")
    wait_tone(peer.speaker_path, 660)
    assert av.ask("DEVICES?") == "OK DEVICES mic=tone:660 speaker=speaker.wav camera=pattern"
    assert av.ask("DEVICE MIC bogus").startswith("ERR BAD_ARGUMENT a sim mic is")

    # The camera's orientation.
    assert av.ask("CAMERA ROTATE 90") == "OK CAMERA mirror=off rotate=90"
    assert av.ask("CAMERA MIRROR TOGGLE") == "OK CAMERA mirror=on rotate=90"
    av.ev("EV camera-orientation ", "mirror=on", "rotate=90")
    assert av.ask("CAMERA?") == "OK CAMERA mirror=on rotate=90"
    assert av.ask("CAMERA ROTATE 45").startswith("ERR BAD_ARGUMENT usage: CAMERA")
    assert av.ask("PING") == "OK PONG"

"""The microphone is open only while something uses it, through real alsa-lib.

An in-process appliance (full wiring) in its own namespace joins a room on a real Janus
with an ALSA capture PCM reading a FIFO. Whether the capture device is open is read from
the process's own file descriptors (alsa-lib holds the FIFO open exactly while the PCM is
open) and compared with ``media.mic.open`` in the status and the ``mic_active`` LED on
gpiozero's mock pins.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from device.state import ApplianceState
from tests.control.boxes import BoxInNamespace, make_box  # noqa: F401  (fixture)
from tests.drivers.conftest import AsoundRc, asoundrc  # noqa: F401  (fixture)
from tests.harness.alsa_mic import FifoMic, capture_open
from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    janus,
    make_peer,
    network,
    room_number,
)
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]

LEDS = {"status": 5, "mute": 6, "mic_active": 19}


def mic_seen(box: BoxInNamespace, fifo: Path) -> tuple[bool, bool, bool]:
    """(device open, ``media.mic.open``, ``mic_active`` LED lit) as of now."""
    status = box.loop.run(_status(box), 10)
    return capture_open(fifo), bool(status["media"]["mic"]["open"]), \
        box.led("mic_active").state == 1.0


async def _status(box: BoxInNamespace) -> dict[str, Any]:
    return box.app.status()


def act(box: BoxInNamespace, name: str, **args: Any) -> float:
    """Run an action on the box; the seconds it took."""
    t0 = time.monotonic()
    box.loop.run(box.app.dispatcher.dispatch(name, args, source="test"), 30)
    return time.monotonic() - t0


def expect(box: BoxInNamespace, fifo: Path, is_open: bool, what: str) -> None:
    # The room opens and closes the mic before the action returns; the LED follows the
    # mic-open event on the loop, within a moment.
    assert capture_open(fifo) == is_open, f"{what}: capture device open={not is_open}"
    box.wait(lambda: mic_seen(box, fifo) == (is_open,) * 3, timeout=2.0,
             what=f"{what}: status and LED agree (seen {mic_seen(box, fifo)})")


def test_mic_is_open_only_while_the_room_sends_it(make_box, make_peer, room_number,  # noqa: F811
                                                  asoundrc: AsoundRc,  # noqa: F811
                                                  tmp_path: Path) -> None:
    fifo = tmp_path / "mic.fifo"
    mic = FifoMic(fifo, freq=440)
    try:
        asoundrc.file_pcm("boxmic", infile=fifo)
        asoundrc.file_pcm("boxspk")
        box = make_box(room_number, {"leds": LEDS},
                       audio={"backend": "alsa", "mic_device": "boxmic",
                              "speaker_device": "boxspk"})
        peer = make_peer("peer", room_number, tone=None)
        peer.call(lambda s: s.join())
        expect(box, fifo, False, "idle")

        act(box, "join")
        box.wait(lambda: box.app.state.state == ApplianceState.IN_ROOM, what="in_room")
        box.wait(lambda: capture_open(fifo), timeout=2.0, what="mic opened on join")
        expect(box, fifo, True, "joined as publisher")
        wait_tone(peer.speaker_path, 440, timeout=30)  # the ALSA mic reaches the room

        act(box, "mute", state="on")  # muted: silence is sent, the device stays open
        expect(box, fifo, True, "muted")
        assert box.led("mute").state == 1.0
        act(box, "mute", state="off")

        act(box, "deaf", state="on")
        expect(box, fifo, False, "deaf")
        act(box, "deaf", state="off")
        expect(box, fifo, True, "deaf off")

        act(box, "role", role="listener")
        expect(box, fifo, False, "listener")
        act(box, "role", role="publisher")
        expect(box, fifo, True, "publisher again")

        took = act(box, "leave")
        expect(box, fifo, False, "left")
        print(f"leave took {took * 1000:.0f} ms, the capture device closed within it")

        act(box, "role", role="listener")
        act(box, "join")
        box.wait(lambda: box.app.state.state == ApplianceState.IN_ROOM, what="in_room")
        expect(box, fifo, False, "joined as listener")

        act(box, "role", role="publisher")  # publishing reopens it
        expect(box, fifo, True, "published")
        wait_tone(peer.speaker_path, 440, timeout=30)
        act(box, "leave")
        expect(box, fifo, False, "left again")
        # The role changes happened in the room: the box joined twice, and never left
        # and rejoined for them (the server hangs up the withdrawn publisher: no failure).
        assert box.app.room.join_count == 2
    finally:
        mic.close()

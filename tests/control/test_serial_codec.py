"""A room that takes none of the box's video codecs: the serial line says so with an ``EV``
line, the status shows it, and the box stays in the room with its audio."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control.boxes import make_box  # noqa: F401  (fixture)
from tests.control.support import Pty, SerialClient
from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    janus,
    make_peer,
    network,
    room_with_codec,
)
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

W = 20.0


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "ttyAV")
    yield p
    p.close()


def test_vp9_room_gives_a_room_warning_event_and_audio(make_box, make_peer,  # noqa: F811
                                                       room_with_codec, pty) -> None:  # noqa: F811
    room = room_with_codec("vp9")
    peer = make_peer("peer", room, tone="tone:880")
    peer.call(lambda s: s.join())
    box = make_box(room, {}, serial={"port": str(pty.link)}, video={"enabled": True})
    av = SerialClient(pty)
    assert av.read_line(W).startswith("EV ready version=")
    time.sleep(0.05)
    assert av.cmd("JOIN", W) == "OK JOIN state=joining"
    line = av.wait_event(lambda e: e.startswith("EV room-warning "), W)
    assert "code=VIDEO_CODEC_UNSUPPORTED" in line and "room_codecs=vp9" in line, line
    assert "supported=h264,vp8" in line, line
    av.wait_event(lambda e: e.startswith("EV state ") and "new=in_room" in e, W)
    # the status carries the warning while it holds; nothing says error
    async def snapshot() -> dict[str, Any]:
        return box.app.status()

    status = box.loop.run(snapshot(), 10)
    assert status["state"] == "in_room"
    [warning] = status["room"]["warnings"]
    assert warning["code"] == "VIDEO_CODEC_UNSUPPORTED" and warning["room_codecs"] == ["vp9"]
    assert status["room"]["video_codec"] is None
    # audio both ways
    wait_tone(peer.speaker_path, 440, timeout=W)
    wait_tone(box.speaker_wav, 880, timeout=W)
    # the camera is not kept open for a video nobody can take
    assert status["media"]["encoder"]["codecs"] == []
    assert not any(e.startswith("EV room-error") for e in av.events)

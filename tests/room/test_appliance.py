"""The whole appliance (``edgeroom run --sim``) in a room, and its local SFU."""

from __future__ import annotations

import os
import signal
import time

import pytest

from services.room.api import RoomState
from services.room.janus.jcfg import JanusSettings, RoomSpec
from services.room.local_sfu import LocalJanus
from tests.harness.netns import NsLoop
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]


def test_appliance_joins_and_carries_audio_both_ways(make_appliance, make_peer, janus,
                                                     room_number):
    app = make_appliance("box", {
        "room": {"server": janus.url, "room": room_number, "display_name": "box"},
        "sim": {"mic": "tone:440"},
        "video": {"width": 320, "height": 240, "fps": 15},
        "web": {"listen": "127.0.0.1:8080"},
    })
    peer = make_peer("b", room_number, tone="tone:880", collect_video=True)
    peer.call(lambda s: s.join())
    try:
        peer.wait_for(lambda: [m for m in peer.session.members() if m.display == "box"
                               and m.has_audio and m.has_video], timeout=30,
                      what="the appliance publishing")
        wait_tone(peer.speaker_path, 440)
        wait_tone(app.speaker_wav, 880)
        box = next(m for m in peer.session.members() if m.display == "box")
        peer.wait_for(lambda: len(peer.video_numbers.get(box.id, [])) > 10,
                      what="frames of the appliance's camera")
        assert app.alive()
    except AssertionError:
        print(app.log_text()[-4000:])
        raise


def test_local_sfu_is_started_and_restarted(network, make_peer, tmp_path):
    host = network.add_host("sfu")
    loop = NsLoop(host)
    sfu = LocalJanus(JanusSettings(listen_ip=host.ip, port=8188, interface="eth0",
                                   rooms=(RoomSpec(77, secret="x"),)), tmp_path / "sfu")
    task = loop.submit(sfu.run())
    try:
        loop.run(sfu.wait_ready(15), 20)
        assert sorted(p.name for p in (tmp_path / "sfu/janus/plugins").iterdir()) == [
            "libjanus_audiobridge.so", "libjanus_textroom.so", "libjanus_videoroom.so"]
        peer = make_peer("a", 77, tone=None, url=sfu.url)
        peer.call(lambda s: s.join())
        first = sfu.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        peer.wait_for(lambda: sfu.starts == 2 and sfu.pid != first, timeout=15,
                      what="janus restarted")
        peer.wait_for(lambda: len(peer.names("entered")) == 2, timeout=20,
                      what="rejoined the restarted SFU")
        assert peer.session.state == RoomState.IN_ROOM
    finally:
        loop.loop.call_soon_threadsafe(task.cancel)
        deadline = time.monotonic() + 10
        while not task.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        loop.close()
    assert sfu.pid is None


def test_two_appliances_survive_a_janus_restart(make_appliance, network, tmp_path):
    from tests.harness.fixtures import HARNESS_ROOMS
    from tests.harness.janus import JanusServer

    server = JanusServer(network.add_host("janus-r"), tmp_path, HARNESS_ROOMS)
    server.start()
    boxes = []
    try:
        for name, hz in (("boxa", 440), ("boxb", 880)):
            boxes.append(make_appliance(name, {
                "room": {"server": server.url, "room": 1001, "display_name": name},
                "sim": {"mic": f"tone:{hz}"},
                "video": {"enabled": False, "receive": False},
                "web": {"listen": "127.0.0.1:8080"},
            }))
        a, b = boxes
        wait_tone(b.speaker_wav, 440, timeout=30)
        wait_tone(a.speaker_wav, 880, timeout=30)
        pids = (a.pid, b.pid)
        server.kill()
        wait_tone(b.speaker_wav, 440, present=False, window=0.5)
        server.start()
        wait_tone(b.speaker_wav, 440, timeout=30, window=0.5)
        wait_tone(a.speaker_wav, 880, timeout=30, window=0.5)
        assert a.alive() and b.alive() and (a.pid, b.pid) == pids  # never restarted
        assert "reconnecting" in a.log_text() or "rejoining" in a.log_text()
    except AssertionError:
        for box in boxes:
            print(box.host.name, box.log_text()[-3000:])
        raise
    finally:
        server.stop()

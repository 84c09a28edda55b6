"""Wrong PIN, unknown room, and a Janus restart in the middle of a call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import replace

import pytest

from services.room.api import NoSuchRoom, NotInRoom, RoomState, Unauthorized, WrongPin
from services.room.janus.jcfg import write_config
from tests.harness.fixtures import HARNESS_ROOMS, PIN_ROOM, ROOM_PIN
from tests.harness.janus import JanusServer
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]


def test_wrong_pin_is_reported_once_without_retries(make_peer):
    p = make_peer("a", PIN_ROOM, tone=None, pin="0000")
    with pytest.raises(WrongPin) as err:
        p.call(lambda s: s.join())
    assert "PIN" in str(err.value)
    assert p.session.state == RoomState.ERROR
    time.sleep(2.0)
    assert p.session.attempts == 1
    assert p.names("reconnecting") == []
    errors = p.names("room-error")
    assert len(errors) == 1 and errors[0]["code"] == "WRONG_PIN"
    states = [d["new"] for d in p.names("room-state")]
    assert states == ["joining", "error"]


def test_right_pin_joins(make_peer):
    p = make_peer("a", PIN_ROOM, tone=None, pin=ROOM_PIN)
    p.call(lambda s: s.join())
    assert p.session.state == RoomState.IN_ROOM
    p.call(lambda s: s.leave())
    assert p.session.state == RoomState.IDLE


def test_unknown_room_is_permanent(make_peer):
    p = make_peer("a", 999_999, tone=None)
    with pytest.raises(NoSuchRoom):
        p.call(lambda s: s.join())
    assert p.session.state == RoomState.ERROR
    assert p.names("room-error")[0]["code"] == "NO_SUCH_ROOM"


def test_unreachable_server_keeps_retrying_with_backoff(make_peer, janus):
    # a host that is there, with nothing listening on the port: refused at once
    p = make_peer("a", 1001, tone=None, url=f"ws://{janus.host.ip}:9")
    future = p.loop.submit(p.session.join())
    p.wait_for(lambda: len(p.names("reconnecting")) >= 3, timeout=10, what="3 retries")
    delays = [d["delay"] for d in p.names("reconnecting")]
    assert delays[0] <= 0.3
    assert all(d <= 10.0 for d in delays)
    assert p.session.state == RoomState.RECONNECTING
    assert not future.done()
    p.call(lambda s: s.leave())
    assert p.session.state == RoomState.IDLE
    with pytest.raises(NotInRoom):  # the pending join ends when we leave
        future.result(5)
    assert any("cannot reach" in d["reason"] for d in p.names("reconnecting"))


def test_janus_restart_mid_call(make_peer, network, tmp_path):
    host = network.add_host("janus2")
    server = JanusServer(host, tmp_path, HARNESS_ROOMS)
    server.start()
    try:
        a = make_peer("a", 1001, tone="tone:440", url=server.url)
        b = make_peer("b", 1001, tone="tone:880", url=server.url)
        a.call(lambda s: s.set_mic_volume(90))
        a.call(lambda s: s.join())
        b.call(lambda s: s.join())
        wait_tone(b.speaker_path, 440)
        wait_tone(a.speaker_path, 880)

        server.kill()
        t0 = time.monotonic()
        for p in (a, b):
            p.wait_event("reconnecting", since=t0 - 1)
        time.sleep(1.0)  # a few failed attempts while it is down
        server.start()
        for p in (a, b):
            p.wait_for(lambda p=p: len(p.names("entered")) == 2, timeout=20,
                       what="rejoined")
        t1 = time.monotonic()
        wait_tone(b.speaker_path, 440, window=0.6)
        wait_tone(a.speaker_path, 880, window=0.6)
        print(f"rejoin after restart: {time.monotonic() - t0:.2f} s since kill, "
              f"tones back {time.monotonic() - t1:.2f} s after both entered")
        assert a.session.controls.mic_volume == 90  # controls survive
        assert a.session.state == RoomState.IN_ROOM
        assert {m.id for m in a.session.members()} == {b.session.local_id}
        assert a.session.local_id == a.names("entered")[0]["member_id"]  # same id kept
        delays = [d["delay"] for d in a.names("reconnecting")]
        assert delays[0] <= 0.3 and all(d <= 10 for d in delays)
    finally:
        server.stop()


def test_api_secret(make_peer, network, tmp_path):
    host = network.add_host("janus3")
    server = JanusServer(host, tmp_path, HARNESS_ROOMS, api_secret="apisecret1")
    server.start()
    try:
        bad = make_peer("a", 1001, tone=None, url=server.url, api_secret="nope")
        with pytest.raises(Unauthorized):
            bad.call(lambda s: s.join())
        assert bad.session.state == RoomState.ERROR and bad.names("reconnecting") == []
        good = make_peer("b", 1001, tone=None, url=server.url, api_secret="apisecret1")
        good.call(lambda s: s.join())
        assert good.session.state == RoomState.IN_ROOM
    finally:
        server.stop()


def _signed_token(secret: str, plugins: list[str], valid_s: int = 3600) -> str:
    """A Janus HMAC-signed token: ``expiry,janus,plugins:base64(HMAC-SHA1)``."""
    data = ",".join([str(int(time.time()) + valid_s), "janus", *plugins])
    sig = hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()
    return f"{data}:{base64.b64encode(sig).decode()}"


def test_token_auth(make_peer, network, tmp_path):
    host = network.add_host("janus4")
    server = JanusServer(host, tmp_path, HARNESS_ROOMS)
    server.settings = replace(server.settings, token_auth_secret="tokensecret")
    write_config(server.confdir, server.settings)
    server.start()
    try:
        plugins = ["janus.plugin.videoroom", "janus.plugin.textroom"]
        bad = make_peer("a", 1001, tone=None, url=server.url,
                        token=_signed_token("wrong", plugins))
        with pytest.raises(Unauthorized):
            bad.call(lambda s: s.join())
        good = make_peer("b", 1001, tone=None, url=server.url,
                         token=_signed_token("tokensecret", plugins))
        good.call(lambda s: s.join())
        assert good.session.state == RoomState.IN_ROOM
    finally:
        server.stop()

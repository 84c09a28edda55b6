"""A box whose own event loop is late keeps its call.

On a starved CPU the loop can be seconds late. Every answer Janus sent in the meantime
waits in the socket; a timeout that fires on the loop's clock regardless (a WebSocket
ping's, a keepalive's) then gives up in the same pass that brings the answer in, and the
box tears its publisher down and publishes again (the mic reopens, the members hear a
gap and a new stream). Here the loop of a publishing member is stalled over and over,
longer than any of those timeouts, with one loop pass between stalls, while a real Janus
answers in time; the call must come out of it as it went in. When Janus is really gone,
the same member still gives up and recovers (tests/room/test_errors_and_reconnect.py).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from services.room.api import RoomState
from services.room.janus.transport import JanusConnection
from tests.harness.netns import NsLoop
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]

#: Longer than the answer a ping waits for (5 s), shorter than a keepalive's (10 s).
STALL_S = 6.0
#: Enough stalls to cover a keepalive (every 25 s) and several pings.
STALLS = 9
#: The silence after which the member pings, shortened for the whole-call test. In a room
#: other frames from Janus (its events about the members, for one) often kept the socket
#: from being 10 s silent through all the stalls, and no ping went out.
PING_AFTER_S = 2.0


def stall_loop(loop: object, stalls: int, seconds: float) -> threading.Event:
    """Block ``loop`` ``stalls`` times for ``seconds`` each, one pass apart."""
    done = threading.Event()

    def stall(left: int) -> None:
        time.sleep(seconds)  # the loop is late: nothing on it runs meanwhile
        if left > 1:
            loop.call_soon(stall, left - 1)  # type: ignore[attr-defined]
        else:
            done.set()

    loop.call_soon_threadsafe(stall, stalls)  # type: ignore[attr-defined]
    return done


def test_a_late_loop_does_not_tear_the_call_down(make_peer, room_number):
    a = make_peer("a", room_number, tone="tone:440")
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)  # every connection is up: a steady call
    publisher = a.call(lambda s: s._backend.pub_pc)
    joins = a.session.join_count
    pings = a.call(lambda s: s._conn.liveness.pings)
    assert publisher is not None
    # A ping is then due in every stall, whatever Janus sends, and its answer (5 s) is
    # always overdue when the loop comes back.
    a.call(lambda s: setattr(s._conn.liveness, "idle_s", PING_AFTER_S))

    done = stall_loop(a.loop.loop, STALLS, STALL_S)
    assert done.wait(STALLS * STALL_S + 30), "the stalls did not end"
    a.call(lambda s: None, timeout=30)  # the loop runs again
    time.sleep(2.0)  # what the stalls left due runs now

    assert a.names("reconnecting") == [], a.names("reconnecting")
    assert a.session.state == RoomState.IN_ROOM
    assert a.session.join_count == joins
    assert a.call(lambda s: s._backend.pub_pc) is publisher, "the publisher was rebuilt"
    assert a.call(lambda s: s._conn.liveness.pings) > pings, \
        "no ping went out during the stalls: the test tested nothing"
    wait_tone(b.speaker_path, 440, timeout=20)


def test_a_late_loop_is_not_taken_for_a_dead_link(network, janus):
    """The WebSocket's own liveness check (a ping after a silence) alone: Janus's
    keepalive is put out of the way, so only the ping and its answer are exercised."""
    loop = NsLoop(network.add_host("box"))
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        async def open_() -> JanusConnection:
            conn = JanusConnection(janus.url, keepalive=3600.0)
            await conn.open()
            return conn

        conn = loop.run(open_(), 20)
        closers.append(conn.close)
        time.sleep(1.0)
        done = stall_loop(loop.loop, 6, STALL_S)  # a ping is due after 10 s of silence
        assert done.wait(6 * STALL_S + 30), "the stalls did not end"
        time.sleep(2.0)
        assert not conn.closed.done(), conn.closed.result()
        assert loop.run(conn.request_ack({"janus": "keepalive"}), 20)["janus"] == "ack"
        assert conn.liveness is not None and conn.liveness.pings >= 1, \
            "no ping went out during the stalls: the test tested nothing"

        # A server that stops answering (stopped, its socket still open) is found out.
        assert janus.proc is not None
        janus.proc.send_signal(signal.SIGSTOP)
        try:
            reason = loop.run(asyncio.wait_for(asyncio.shield(conn.closed), 40), 45)
        finally:
            janus.proc.send_signal(signal.SIGCONT)
        assert "no answer to a ping" in reason
    finally:
        for close in closers:
            loop.run(close(), 10)
        loop.close()

"""Links between rooms on two Janus servers, each in its own namespace."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.room.api import RoomState
from services.room.context import RoomSettings
from services.room.links.settings import LinkSettings
from tests.harness.fixtures import HARNESS_ROOMS, ROOM_SECRET, _can_run
from tests.harness.janus import JanusServer
from tests.harness.links import Orchestrator, end, start_servers
from tests.harness.netns import Network
from tests.harness.peers import RoomPeer
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    reason = _can_run()
    if reason:
        pytest.fail(reason)
    with Network() as network:
        yield network


@pytest.fixture(scope="module")
def servers(net: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[JanusServer]]:
    started = start_servers(net, tmp_path_factory.mktemp("links"), 2, HARNESS_ROOMS)
    try:
        yield started
    finally:
        for s in started:
            s.stop()


_rooms = iter(range(1001, 1020))


@pytest.fixture
def room() -> int:
    return next(_rooms)


@pytest.fixture
def orchestrator(net: Network) -> Iterator[Orchestrator]:
    orch = Orchestrator(net, f"ctl{len(net.hosts)}")
    try:
        yield orch
    finally:
        orch.close()


@pytest.fixture
def peers(net: Network, tmp_path: Path) -> Iterator[Any]:
    made: list[RoomPeer] = []

    def make(name: str, server: JanusServer, room: int | str, backend: str = "videoroom",
             **kw: Any) -> RoomPeer:
        host = net.add_host(f"{name}{len(net.hosts)}")
        settings = RoomSettings(url=server.url, room=room, display=name, backend=backend)
        peer = RoomPeer(host, tmp_path, settings, **kw)
        made.append(peer)
        return peer

    try:
        yield make
    finally:
        for p in reversed(made):
            p.close()


def member(peer: RoomPeer, display: str) -> Any:
    return next((m for m in peer.session.members() if m.display == display), None)


def test_two_servers_hear_and_see_each_other_and_follow_members(
        servers, room, orchestrator, peers):
    j1, j2 = servers
    a = peers("a", j1, room, tone="tone:440", camera=True)
    b = peers("b", j2, room, tone="tone:880", camera=True, collect_video=True)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    assert a.session.state == b.session.state == RoomState.IN_ROOM

    orchestrator.add(LinkSettings("j1-j2", end(j1, room, ROOM_SECRET),
                                  end(j2, room, ROOM_SECRET)))
    up = orchestrator.wait_state("j1-j2", "up")
    assert up["local"] == f"{room}@{j1.host.ip}" and up["far"] == f"{room}@{j2.host.ip}"

    # each sees the other in its roster, with the room it is in; the link itself is not
    # a member anywhere
    a_at_b = b.wait_for(lambda: member(b, "a"), what="a in b's roster")
    b_at_a = a.wait_for(lambda: member(a, "b"), what="b in a's roster")
    assert a_at_b.room == f"{room}@{j1.host.ip}" and b_at_a.room == f"{room}@{j2.host.ip}"
    assert [m.display for m in b.session.members()] == ["a"]
    assert [m.display for m in a.session.members()] == ["b"]
    b.wait_for(lambda: member(b, "a").has_video, what="a's video at b")

    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)

    # b reads a's frame numbers from the strip, through the link
    b.wait_for(lambda: len(b.video_numbers.get(a_at_b.id, [])) > 45, timeout=25,
               what="45 frames of a's camera through the link")
    numbers = b.video_numbers[a_at_b.id][5:]
    assert numbers == sorted(numbers), "frame numbers went backwards"

    # a member joining on server 1 shows at server 2, and leaving goes too
    c = peers("c", j1, room, tone="tone:660")
    c.call(lambda s: s.join())
    c_at_b = b.wait_for(lambda: member(b, "c"), what="c in b's roster")
    assert c_at_b.room == f"{room}@{j1.host.ip}"
    wait_tone(b.speaker_path, 660, timeout=20)
    # ... and can be muted locally at b like any member
    b.call(lambda s: s.mute_member(c_at_b.id, True))
    assert b.session.roster.get(c_at_b.id).locally_muted
    wait_tone(b.speaker_path, 660, present=False, timeout=10)
    c.call(lambda s: s.leave())
    b.wait_event("member-left", lambda d: d["id"] == c_at_b.id, timeout=15)
    assert member(b, "c") is None
    assert orchestrator.manager.links()[0]["sent"] == 1  # a only, c's copy is gone

    # removing the link takes a's copy away at b, and b's at a
    orchestrator.remove("j1-j2")
    b.wait_event("member-left", lambda d: d["id"] == a_at_b.id, timeout=15)
    a.wait_event("member-left", lambda d: d["id"] == b_at_a.id, timeout=15)
    assert orchestrator.states("j1-j2")[-1]["state"] == "stopped"


def test_link_comes_back_after_the_far_janus_restarts(servers, room, orchestrator, peers):
    j1, j2 = servers
    a = peers("a", j1, room, tone="tone:440")
    b = peers("b", j2, room, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    orchestrator.add(LinkSettings("r", end(j1, room, ROOM_SECRET), end(j2, room, ROOM_SECRET),
                                  retry_min_s=0.5, retry_max_s=2.0))
    orchestrator.wait_state("r", "up")
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    b_at_a = a.wait_for(lambda: member(a, "b"), what="b in a's roster")

    killed = time.monotonic()
    j2.kill()
    retrying = orchestrator.wait_state("r", "retrying", since=killed)
    assert retrying["reason"]
    # b's copy at a goes with its server
    a.wait_event("member-left", lambda d: d["id"] == b_at_a.id, timeout=15, since=killed)
    wait_tone(a.speaker_path, 880, present=False, timeout=10)
    j2.start()
    orchestrator.wait_state("r", "up", since=killed, timeout=40)
    assert j2.starts == 2
    # b's own session reconnects to the restarted server; the link brings both ways back
    b.wait_for(lambda: b.session.state == RoomState.IN_ROOM, timeout=40, what="b back in")
    a.wait_for(lambda: member(a, "b"), timeout=30, what="b back in a's roster")
    wait_tone(b.speaker_path, 440, timeout=30)
    wait_tone(a.speaker_path, 880, timeout=30)


def test_three_servers_in_a_mesh_every_box_hears_every_other(net, servers, room,
                                                             orchestrator, peers,
                                                             tmp_path_factory):
    from services.room.links.topology import links_for

    j3 = start_servers(net, tmp_path_factory.mktemp("links3"), 1, HARNESS_ROOMS)[0]
    try:
        j1, j2 = servers
        tones = {"a": 440, "b": 660, "c": 880}
        boxes = {name: peers(name, srv, room, tone=f"tone:{tones[name]}")
                 for name, srv in zip(tones, (j1, j2, j3), strict=True)}
        for box in boxes.values():
            box.call(lambda s: s.join())
        links = links_for([end(s, room, ROOM_SECRET) for s in (j1, j2, j3)], "mesh")
        assert len(links) == 3
        for link in links:
            orchestrator.add(link)
        for link in links:
            orchestrator.wait_state(link.name, "up")
        for name, box in boxes.items():
            others = sorted(n for n in tones if n != name)
            box.wait_for(lambda box=box, others=others: sorted(
                m.display for m in box.session.members()) == others,
                timeout=20, what=f"{others} in {name}'s roster")
            for other in others:
                wait_tone(box.speaker_path, tones[other], timeout=25)
        # nothing looped: each server has each box once (2 copies + its own)
        for box in boxes.values():
            assert len(box.session.members()) == 2
    finally:
        j3.stop()


def test_voice_room_link_carries_audio_both_ways_without_echo(servers, room, orchestrator,
                                                              peers):
    j1, j2 = servers
    a = peers("a", j1, room, backend="audiobridge", tone="tone:440")
    b = peers("b", j2, room, backend="audiobridge", tone="tone:660")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    orchestrator.add(LinkSettings("voice", end(j1, room, ROOM_SECRET),
                                  end(j2, room, ROOM_SECRET), backend="audiobridge"))
    orchestrator.wait_state("voice", "up")
    wait_tone(b.speaker_path, 440, timeout=20, threshold=0.05)
    wait_tone(a.speaker_path, 660, timeout=20, threshold=0.05)
    # neither room gets its own voice back through the other
    wait_tone(a.speaker_path, 440, present=False, threshold=0.05)
    wait_tone(b.speaker_path, 660, present=False, threshold=0.05)
    # the far room shows as one linked member, with its room; the link's port probe never
    linked = a.wait_for(lambda: member(a, "linked room"), what="linked room at a")
    assert linked.room == f"{room}@{j2.host.ip}"
    assert [m.display for m in a.session.members()] == ["linked room"]
    orchestrator.remove("voice")
    wait_tone(a.speaker_path, 660, present=False, threshold=0.05, timeout=10)


def _feed_custom_messages(peer: RoomPeer, responder: Any, stop: threading.Event) -> None:
    """Hand each ``custom-message`` event of ``peer`` to ``responder`` (as the appliance's
    bus subscription does)."""
    seen = 0

    async def feed(data: dict[str, Any]) -> None:
        pending = responder.on_custom_message(data)
        if pending is not None:
            await pending

    while not stop.is_set():
        found = peer.names("custom-message")
        for data in found[seen:]:
            peer.loop.submit(feed(data))
        seen = len(found)
        time.sleep(0.05)


def test_a_box_asks_the_far_room_which_declines_then_accepts(servers, room, orchestrator,
                                                            peers):
    from services.room.links.requests import AnswerPolicy, LinkRequester, LinkResponder
    from services.room.links.settings import RoomEnd

    j1, j2 = servers
    a = peers("a", j1, room, tone="tone:440")
    b = peers("b", j2, room, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    responder = LinkResponder(end(j2, room, ROOM_SECRET), b.session, b._record,
                              AnswerPolicy(auto_accept=True, allow=("nobody@here",)))
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_custom_messages, args=(b, responder, stop))
    feeder.start()
    requester = LinkRequester(end(j1, room, ROOM_SECRET), orchestrator.manager,
                              orchestrator._record)
    far = RoomEnd(j2.url, room)  # no secret: the far room hands it over if it accepts
    try:
        # not on the allow list: the operator decides, and declines
        asked = orchestrator.loop.submit(requester.request("asked", far, timeout=30))
        req = b.wait_event("link-request")
        assert req["from"] == f"{room}@{j1.host.ip}" and req["direction"] == "both"
        b.loop.run(responder.answer(req["id"], False, "not now"))
        assert asked.result(30) is False
        assert orchestrator.manager.links() == []
        # now the policy accepts this room by itself
        responder.policy = AnswerPolicy(auto_accept=True, allow=(f"{room}@{j1.host.ip}",))
        since = time.monotonic()
        asked = orchestrator.loop.submit(requester.request("asked", far, timeout=30))
        assert asked.result(30) is True
        orchestrator.wait_state("asked", "up", since=since)
        wait_tone(b.speaker_path, 440, timeout=20)
        wait_tone(a.speaker_path, 880, timeout=20)
        a_at_b = b.wait_for(lambda: member(b, "a"), what="a at b")
        # the far side ends it: the asker takes the link down
        accepted = [d for d in b.names("link-answer") if d["accepted"]][-1]
        b.loop.run(responder.end(accepted["id"]))
        orchestrator.wait_state("asked", "stopped", since=since)
        b.wait_event("member-left", lambda d: d["id"] == a_at_b.id, timeout=15)
        ended = [d for _, n, d in orchestrator.events if n == "link-ended"]
        assert ended and ended[-1]["by"] == "far"
    finally:
        stop.set()
        feeder.join(5)
        orchestrator.loop.run(requester.close())


def test_a_member_who_stops_and_starts_publishing_is_followed(servers, room, orchestrator,
                                                              peers):
    j1, j2 = servers
    a = peers("a", j1, room, tone="tone:440")
    b = peers("b", j2, room, tone=None)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    orchestrator.add(LinkSettings("pub", end(j1, room, ROOM_SECRET), end(j2, room, ROOM_SECRET),
                                  direction="send"))
    orchestrator.wait_state("pub", "up")
    first = b.wait_for(lambda: member(b, "a"), what="a at b")
    wait_tone(b.speaker_path, 440, timeout=20)
    a.call(lambda s: s.set_role("listener"))  # unpublishes
    b.wait_event("member-left", lambda d: d["id"] == first.id, timeout=15)
    wait_tone(b.speaker_path, 440, present=False, timeout=10)
    a.call(lambda s: s.set_role("publisher"))  # publishes again: a new copy
    again = b.wait_for(lambda: member(b, "a"), timeout=15, what="a back at b")
    assert again.id != first.id
    wait_tone(b.speaker_path, 440, timeout=20)
    # the direction was "send": nothing of server 2 came to server 1
    assert orchestrator.manager.links()[0]["received"] == 0


async def _until_published(seen: list[Any], rid: int, count: int) -> None:
    """Until the watcher has heard ``count`` announcements of remote publisher ``rid``."""
    for _ in range(50):
        if sum(1 for k, a in seen if k == "published" and a.id == rid) >= count:
            return
        await asyncio.sleep(0.1)


def test_update_remote_publisher_renegotiates_the_copy_on_janus_1_1(servers, room,
                                                                    orchestrator):
    """The requests the forwarder sends on a renegotiation, against the real server."""
    from services.room.links.vr_server import Publisher, VideoRoomServer

    j2 = servers[1]

    async def scenario() -> list[Any]:
        watcher = VideoRoomServer(end(j2, room, ROOM_SECRET))
        seen: list[Any] = []
        watcher.listeners.append(lambda kind, arg: seen.append((kind, arg)))
        await watcher.open()
        try:
            audio = Publisher(1, "x", ({"type": "audio", "mindex": 0, "mid": "0",
                                        "codec": "opus", "fec": True},))
            reply = await watcher.add_remote_publisher("x", audio.remote_streams())
            rid = int(reply["id"])
            assert reply["port"] > 0 and reply["rtcp_port"] > 0
            both = Publisher(1, "x", (*audio.streams, {"type": "video", "mindex": 1,
                                                       "mid": "1", "codec": "h264",
                                                       "h264_profile": "42e01f"}))
            await watcher.update_remote_publisher(rid, "x", both.remote_streams())
            await _until_published(seen, rid, 2)  # the server's word, not a fixed wait
            assert rid in await watcher.remote_ids()
            await watcher.remove_remote_publisher(rid)
            for _ in range(50):  # the server drops it in its own time
                if rid not in await watcher.remote_ids():
                    break
                await asyncio.sleep(0.1)
            assert rid not in await watcher.remote_ids()
            return [(k, a) for k, a in seen if k == "published" and a.id == rid]
        finally:
            await watcher.close()

    events = orchestrator.loop.run(scenario())
    assert [len(p.streams) for _, p in events] == [1, 2]
    assert events[-1][1].streams[1]["codec"] == "h264"


def test_an_appliance_keeps_the_links_of_its_config_up(net, servers, room, peers, tmp_path):
    from tests.harness.appliance import ApplianceProcess

    j1, j2 = servers
    box = ApplianceProcess(net.add_host(f"box{len(net.hosts)}"), tmp_path / "box", {
        "room": {"server": j1.url, "room": room, "display_name": "box",
                 "secret": ROOM_SECRET},
        "sim": {"mic": "tone:440"},
        "video": {"enabled": False, "receive": False},
        "web": {"listen": "127.0.0.1:8080"},
        "link": [{"name": "hall", "server": j2.url, "room": room, "secret": ROOM_SECRET,
                  "label": "hall"}],
    })
    b = peers("b", j2, room, tone="tone:880")
    b.call(lambda s: s.join())
    box.start()
    try:
        at_b = b.wait_for(lambda: member(b, "box"), timeout=40, what="the box at server 2")
        assert at_b.room == f"{room}@{j1.host.ip}"
        wait_tone(b.speaker_path, 440, timeout=30)
        wait_tone(box.speaker_wav, 880, timeout=30)
        assert "link hall: connecting -> up" in box.log_text()
    finally:
        box.stop()
    # when the box stops, its copy leaves server 2 too
    b.wait_event("member-left", lambda d: d["id"] == at_b.id, timeout=20)


def test_three_voice_rooms_in_a_star_every_box_hears_every_other(net, servers, room,
                                                                 orchestrator, peers,
                                                                 tmp_path_factory):
    from services.room.links.topology import links_for

    j3 = start_servers(net, tmp_path_factory.mktemp("voice3"), 1, HARNESS_ROOMS)[0]
    try:
        j1, j2 = servers
        tones = {"a": 440, "b": 660, "c": 1000}
        boxes = {name: peers(name, srv, room, backend="audiobridge", tone=f"tone:{hz}")
                 for (name, hz), srv in zip(tones.items(), (j1, j2, j3), strict=True)}
        for box in boxes.values():
            box.call(lambda s: s.join())
        links = [LinkSettings(s.name, s.local, s.far, backend="audiobridge")
                 for s in links_for([end(s, room, ROOM_SECRET) for s in (j1, j2, j3)],
                                    "star")]
        for link in links:
            orchestrator.add(link)
        for link in links:
            orchestrator.wait_state(link.name, "up")
        # the spokes hear each other through the hub's mix, and nobody hears itself
        for name, box in boxes.items():
            for other, hz in tones.items():
                if other != name:
                    wait_tone(box.speaker_path, hz, timeout=25, threshold=0.05)
            wait_tone(box.speaker_path, tones[name], present=False, threshold=0.05)
    finally:
        j3.stop()

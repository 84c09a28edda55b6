"""Link parts that need no server: settings checks, topologies, names, stream layout,
and the backoff of a link whose server is unreachable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.room.api import ServerUnreachable
from services.room.links.link import RoomLink
from services.room.links.naming import (
    WATCHER_DISPLAY,
    is_link_watcher,
    linked_display,
    split_display,
)
from services.room.links.settings import LinkSettings, RoomEnd
from services.room.links.topology import links_for, streams_per_link
from services.room.links.vr_server import Publisher
from services.room.roster import Roster

A = RoomEnd("ws://10.0.0.1:8188", 1234, secret="s1")
B = RoomEnd("ws://10.0.0.2:8188", 1234, secret="s2")
C = RoomEnd("ws://10.0.0.3:8188", 1234)
D = RoomEnd("ws://10.0.0.4:8188", 1234)
E = RoomEnd("ws://10.0.0.5:8188", 1234)


def test_settings_refuse_what_cannot_work_with_a_clear_reason():
    with pytest.raises(ValueError, match="direction must be one of both, send, receive"):
        LinkSettings("x", A, B, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a ws:// or wss:// Janus URL"):
        LinkSettings("x", A, RoomEnd("http://10.0.0.2", 1))
    with pytest.raises(ValueError, match="cannot be linked to itself"):
        LinkSettings("x", A, A)
    with pytest.raises(ValueError, match=r"voice-room .* go both ways"):
        LinkSettings("x", A, B, direction="send", backend="audiobridge")
    assert "s1" not in repr(LinkSettings("x", A, B)) and "s2" not in repr(A) + repr(B)


async def test_a_room_and_its_number_written_as_a_name_are_one_room():
    from dataclasses import replace

    from services.room.links.manager import LinkError, LinkManager

    named = replace(A, room="1234")
    with pytest.raises(ValueError, match="cannot be linked to itself"):
        LinkSettings("x", A, named)
    manager = LinkManager(lambda name, data: None, Unreachable)
    try:
        manager.add(LinkSettings("one", A, B))
        with pytest.raises(LinkError, match="joins the same rooms already"):
            manager.add(LinkSettings("two", replace(B, room="1234"), named))
    finally:
        await manager.close()


def test_mesh_and_star_links():
    mesh = links_for([A, B, C, D])
    assert [(s.local.host, s.far.host) for s in mesh] == [
        ("10.0.0.1", "10.0.0.2"), ("10.0.0.1", "10.0.0.3"), ("10.0.0.1", "10.0.0.4"),
        ("10.0.0.2", "10.0.0.3"), ("10.0.0.2", "10.0.0.4"), ("10.0.0.3", "10.0.0.4")]
    star = links_for([A, B, C, D, E], "star")
    assert [s.far.host for s in star] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
    assert {s.local.host for s in star} == {"10.0.0.1"}
    with pytest.raises(ValueError, match="at most 4 servers"):
        links_for([A, B, C, D, E])
    with pytest.raises(ValueError, match="listed twice"):
        links_for([A, B, A])
    with pytest.raises(ValueError, match="at least two"):
        links_for([A])
    # 3 servers with 2, 1 and 4 publishers
    assert streams_per_link([2, 1, 4], "mesh") == {"server-1": 4, "server-2": 2,
                                                   "server-3": 8}
    assert streams_per_link([2, 1, 4], "star") == {"server-1": 4, "server-2": 1,
                                                   "server-3": 4}


def test_linked_members_show_their_room_and_the_link_is_not_a_member():
    events: list[tuple[str, dict[str, Any]]] = []
    roster = Roster(lambda name, data: events.append((name, data)))
    display = linked_display("Alice", "1234@10.0.0.2")
    assert split_display(display) == ("Alice", "1234@10.0.0.2")
    assert split_display("Bob @ home") == ("Bob @ home", "")
    roster.upsert("7", display=display, role="publisher")
    roster.upsert("8", display="Bob")
    roster.upsert("9", display=WATCHER_DISPLAY, role="listener")
    assert is_link_watcher(WATCHER_DISPLAY) and not is_link_watcher("Bob")
    assert [(m.id, m.display, m.room) for m in roster.members()] == [
        ("7", "Alice", "1234@10.0.0.2"), ("8", "Bob", "")]
    assert [n for n, _ in events] == ["member-joined", "member-joined"]


def test_remote_streams_keep_the_source_mindex_and_leave_out_profiles():
    p = Publisher.from_event({"id": 5, "display": "a", "streams": [
        {"type": "video", "mindex": 2, "mid": "v", "codec": "h264",
         "h264_profile": "42e01f", "simulcast": True},
        {"type": "audio", "mindex": 0, "mid": "a", "codec": "opus", "fec": True}]})
    assert p.remote_streams() == [
        {"mid": "0", "mindex": 0, "type": "audio", "codec": "opus", "fec": True},
        {"mid": "1", "mindex": 1, "type": "data", "disabled": True},
        {"mid": "2", "mindex": 2, "type": "video", "codec": "h264", "simulcast": True}]


class Unreachable:
    def __init__(self, settings: LinkSettings) -> None:
        pass

    async def run(self, on_up: Any) -> str:
        raise ServerUnreachable("cannot reach the room server at ws://10.0.0.2:8188")

    async def close(self) -> None:
        pass

    def counts(self) -> dict[str, Any]:
        return {}


async def test_an_unreachable_server_is_retried_with_growing_waits():
    events: list[dict[str, Any]] = []
    waits: list[float] = []
    done = asyncio.Event()

    async def sleep(s: float) -> None:
        waits.append(s)
        if len(waits) == 6:
            done.set()
        await asyncio.sleep(0)

    link = RoomLink(LinkSettings("x", A, B, retry_min_s=1.0, retry_max_s=8.0),
                    lambda name, data: events.append(data), Unreachable, sleep)
    task = asyncio.create_task(link.run())
    async with asyncio.timeout(5):
        await done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # full jitter within [d/2, d], d doubling from 1 s up to 8 s
    for wait, d in zip(waits, (1, 2, 4, 8, 8, 8), strict=True):
        assert d / 2 <= wait <= d
    retrying = [e for e in events if e["state"] == "retrying"]
    assert "cannot reach the room server" in retrying[0]["reason"]
    assert events[-1]["state"] == "stopped"


async def test_a_request_replayed_from_the_room_history_is_not_answered_again():
    from services.room.links.requests import CMD_REQUEST, AnswerPolicy, LinkResponder

    sent: list[tuple[str, str | None]] = []
    events: list[tuple[str, dict[str, Any]]] = []

    class Channel:
        async def send_text(self, text: str, to: str | None = None) -> None:
            sent.append((text, to))

    responder = LinkResponder(A, Channel(), lambda n, d: events.append((n, d)),
                              AnswerPolicy(auto_accept=True))
    request = {"from": "link-1", "cmd": CMD_REQUEST,
               "payload": {"id": "r1", "from": "1234@10.0.0.2", "direction": "both"}}
    assert responder.on_custom_message({**request, "history": True, "date": "x"}) is None
    assert events == [] and sent == []
    pending = responder.on_custom_message(request)
    assert pending is not None
    await pending
    assert [n for n, _ in events] == ["link-request", "link-answer"]
    assert sent[0][1] == "link-1" and '"secret":"s1"' in sent[0][0]

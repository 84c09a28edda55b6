"""Links between rooms on servers that name rooms and members by strings (Janus's
``string_ids`` in all three plugins): by name, and by a number such a server names
"1600"; video rooms (remote publishers with UUID ids) and voice rooms."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.room.api import RoomState
from services.room.janus.jcfg import RoomSpec
from services.room.links.settings import LinkSettings
from tests.harness.fixtures import ROOM_SECRET
from tests.harness.janus import JanusServer
from tests.harness.links import end, start_servers
from tests.harness.netns import Network
from tests.room.conftest import wait_tone
from tests.room.test_links import member, net, orchestrator, peers  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]

ROOMS = (RoomSpec("lobby", secret=ROOM_SECRET), RoomSpec("1600", secret=ROOM_SECRET),
         RoomSpec("voice", secret=ROOM_SECRET, allow_rtp_participants=True))


@pytest.fixture(scope="module")
def servers(net: Network,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[JanusServer]]:
    started = start_servers(net, tmp_path_factory.mktemp("links-str"), 2, ROOMS,
                            string_ids=True)
    try:
        yield started
    finally:
        for s in started:
            s.stop()


@pytest.mark.parametrize(("here", "there"), [("lobby", "lobby"), (1600, "1600")],
                         ids=["named", "numbered-config"])
def test_a_video_link_between_rooms_named_by_strings(servers, orchestrator,  # noqa: F811
                                                     peers,  # noqa: F811
                                                     here: int | str, there: str) -> None:
    j1, j2 = servers
    a = peers("a", j1, here, tone="tone:440", camera=True)
    b = peers("b", j2, there, tone="tone:880", camera=True, collect_video=True)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    assert a.session.state == b.session.state == RoomState.IN_ROOM

    orchestrator.add(LinkSettings("j1-j2", end(j1, here, ROOM_SECRET),
                                  end(j2, there, ROOM_SECRET)))
    orchestrator.wait_state("j1-j2", "up")
    a_at_b = b.wait_for(lambda: member(b, "a"), what="a in b's roster")
    b_at_a = a.wait_for(lambda: member(a, "b"), what="b in a's roster")
    # the copies are members of the far room by the server's own (string) ids
    assert not a_at_b.id.isdigit() and not b_at_a.id.isdigit()
    assert a_at_b.room == f"{here}@{j1.host.ip}"
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    b.wait_for(lambda: len(b.video_numbers.get(a_at_b.id, [])) > 45, timeout=25,
               what="45 frames of a's camera through the link")
    numbers = b.video_numbers[a_at_b.id][5:]
    assert numbers == sorted(numbers), "frame numbers went backwards"

    # a member who leaves is followed, and removing the link takes the copies away
    a.call(lambda s: s.leave())
    b.wait_event("member-left", lambda d: d["id"] == a_at_b.id, timeout=15)
    assert orchestrator.manager.links()[0]["sent"] == 0
    orchestrator.remove("j1-j2")
    a.call(lambda s: s.join())
    a.wait_event("member-left", lambda d: d["id"] == b_at_a.id, timeout=15)
    assert orchestrator.states("j1-j2")[-1]["state"] == "stopped"


def test_a_voice_link_between_rooms_named_by_strings(servers, orchestrator,  # noqa: F811
                                                     peers) -> None:  # noqa: F811
    j1, j2 = servers
    a = peers("a", j1, "voice", backend="audiobridge", tone="tone:440")
    b = peers("b", j2, "voice", backend="audiobridge", tone="tone:660")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    orchestrator.add(LinkSettings("voice", end(j1, "voice", ROOM_SECRET),
                                  end(j2, "voice", ROOM_SECRET), backend="audiobridge"))
    orchestrator.wait_state("voice", "up")
    wait_tone(b.speaker_path, 440, timeout=20, threshold=0.05)
    wait_tone(a.speaker_path, 660, timeout=20, threshold=0.05)
    linked = a.wait_for(lambda: member(a, "linked room"), what="linked room at a")
    assert linked.room == f"voice@{j2.host.ip}"
    orchestrator.remove("voice")
    wait_tone(a.speaker_path, 660, present=False, threshold=0.05, timeout=10)


def test_a_room_is_not_linked_to_itself_by_its_number_and_name(servers) -> None:
    j1, _ = servers
    with pytest.raises(ValueError, match="cannot be linked to itself"):
        LinkSettings("self", end(j1, 1600, ROOM_SECRET), end(j1, "1600", ROOM_SECRET))
    # a named room of the box's own is a room a link can start from
    assert LinkSettings("named", end(j1, "lobby", ROOM_SECRET),
                        end(servers[1], "lobby", ROOM_SECRET)).local.room == "lobby"

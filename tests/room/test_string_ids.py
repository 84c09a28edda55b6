"""A room server that names its rooms and members by strings (Janus's ``string_ids``, set
in all three plugins), as deployments that name rooms after something else do.

Such a server refuses a numbered room (``Invalid element type (room should be a
string)``), and one that numbers its rooms refuses a name. The box joins a room named
"lobby"; a box configured with room 1600 joins the room such a server names "1600", and
one configured with "1234" joins room 1234 of a server that numbers its rooms. A name on
a server that numbers its rooms is an error that says what to set, not a reconnect loop.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.room.api import NoSuchRoom, RoomError, RoomState
from services.room.janus.jcfg import RoomSpec
from tests.harness.fixtures import ROOM_SECRET
from tests.harness.janus import JanusServer
from tests.harness.netns import Network
from tests.room.conftest import two_boxes_meet, wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(150)]

LOBBY = "lobby"
NUMBERED = 1600  # the server names it "1600"


@pytest.fixture(scope="module")
def named_janus(network: Network, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[JanusServer]:
    host = network.add_host("jstr")
    rooms = (RoomSpec(LOBBY, secret=ROOM_SECRET), RoomSpec(str(NUMBERED), secret=ROOM_SECRET))
    server = JanusServer(host, tmp_path_factory.mktemp("janus-strings"), rooms,
                         string_ids=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_boxes_meet_in_a_room_named_by_a_string(make_peer: Any,
                                                named_janus: JanusServer) -> None:
    # subscribed by the feed's string id: A's camera reaches B, frame after frame
    a, b = two_boxes_meet(make_peer, LOBBY, named_janus.url, secret=ROOM_SECRET)
    a_id, b_id = a.session.local_id, b.session.local_id
    # who is talking comes from the room's own events (its list entry is found by name)
    b.wait_for(lambda: b.session.roster.get(a_id) is not None
               and b.session.roster.get(a_id).talking, what="A talking at B")
    # messages: the TextRoom is named too
    a.call(lambda s: s.send_text("hello lobby"))
    assert b.wait_event("message")["from"] == a_id
    # moderation names the member by its string id
    a.call(lambda s: s.moderate(b_id, True))
    wait_tone(a.speaker_path, 880, present=False, timeout=15)
    a.call(lambda s: s.moderate(b_id, False))
    wait_tone(a.speaker_path, 880, timeout=15)
    assert not a.names("reconnecting") and not b.names("reconnecting")


def test_a_voice_room_named_by_a_string(make_peer: Any, named_janus: JanusServer) -> None:
    a = make_peer("a", LOBBY, tone="tone:440", url=named_janus.url, backend="audiobridge",
                  secret=ROOM_SECRET)
    b = make_peer("b", LOBBY, tone="tone:880", url=named_janus.url, backend="audiobridge")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    b_id = b.session.local_id
    a.wait_for(lambda: b_id in a.session.roster, what="B in A's roster")
    a.call(lambda s: s.moderate(b_id, True))  # the mix's member, by its string id
    wait_tone(a.speaker_path, 880, present=False, timeout=15)
    a.call(lambda s: s.moderate(b_id, False))
    wait_tone(a.speaker_path, 880, timeout=15)


def test_a_room_number_joins_the_room_such_a_server_names_by_it(
        make_peer: Any, named_janus: JanusServer) -> None:
    url = named_janus.url
    a = make_peer("a", NUMBERED, tone="tone:440", url=url)  # configured as a number
    b = make_peer("b", str(NUMBERED), tone="tone:880", url=url)
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    assert a.session.state == RoomState.IN_ROOM
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    b.call(lambda s: s.send_text("one room"))
    assert a.wait_event("message")["text"] == "one room"
    assert not a.names("reconnecting")


def test_a_numeric_name_joins_a_server_that_numbers_its_rooms(make_peer: Any,
                                                             room_number: int) -> None:
    a = make_peer("a", str(room_number), tone="tone:440")  # the default server: numbers
    b = make_peer("b", room_number, tone="tone:880")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)
    wait_tone(a.speaker_path, 880, timeout=20)
    a.call(lambda s: s.send_text("same room"))
    assert b.wait_event("message")["text"] == "same room"


def test_a_name_on_a_server_that_numbers_its_rooms_says_what_to_set(make_peer: Any) -> None:
    a = make_peer("a", LOBBY, tone=None)
    with pytest.raises(RoomError) as err:
        a.call(lambda s: s.join())
    assert isinstance(err.value, NoSuchRoom)
    assert "'lobby' is a name" in str(err.value) and "set room.room" in str(err.value)
    time.sleep(1.0)
    assert a.session.state == RoomState.ERROR
    assert not a.names("reconnecting")  # no retry can help: said once
    assert a.names("room-error")[-1]["code"] == "NO_SUCH_ROOM"


def test_the_appliance_joins_by_number_then_moves_to_a_named_room(
        network: Network, named_janus: JanusServer, make_peer: Any, tmp_path: Path,
        edgeroom_cmd: list[str], clean_env: dict[str, str]) -> None:
    from tests.harness.appliance import ApplianceProcess
    from tests.harness.polling import wait_for
    from tests.media.test_appliance import Api

    host = network.add_host("strbox")
    app = ApplianceProcess(host, tmp_path / "box", {
        "room": {"server": named_janus.url, "room": NUMBERED, "display_name": "box"},
        "sim": {"mic": "tone:440"}, "video": {"enabled": False},
        "web": {"listen": "127.0.0.1:8080"}})
    password = subprocess.run([*edgeroom_cmd, "password", "reset", "--state-dir",
                               str(app.state_dir)], capture_output=True, text=True,
                              env=clean_env, timeout=30, check=True).stdout.strip()
    app.start()
    try:
        there = make_peer("there", str(NUMBERED), tone=None, url=named_janus.url)
        there.call(lambda s: s.join())
        wait_tone(there.speaker_path, 440, timeout=40)  # room 1600 from the config
        assert "the server takes the room as '1600'" in app.log_text()
        api = Api(host, tmp_path, 8080)
        api.login(password)
        assert api.call("GET", "/api/status")["room"]["id"] == str(NUMBERED)  # its name
        lobby = make_peer("lobby", LOBBY, tone=None, url=named_janus.url)
        lobby.call(lambda s: s.join())
        assert api.call("POST", "/api/room/join", {"room": LOBBY})["ok"]
        wait_tone(lobby.speaker_path, 440, timeout=40)  # the box, in the room named lobby
        wait_for(lambda: not there.session.members(), 20, "the box gone from room 1600")
        assert api.call("GET", "/api/status")["room"]["id"] == LOBBY  # where it is now
        bad = api.call("POST", "/api/room/join", {"room": "the lobby"})
        assert bad == {"error": "BAD_ARGUMENT", "message": "room must be a number "
                       "1-9007199254740992, or a name (1-128 letters, digits, '.', '_', '~' "
                       "or '-', starting with a letter or digit), got 'the lobby'"}, bad
    finally:
        app.stop()


def test_the_kind_the_server_asks_for() -> None:
    from services.room.janus.room_ids import in_kind_of, in_server_kind, wire_id

    wants_string = RoomError("Janus error 430: Invalid element type (room should be a string)")
    wants_number = RoomError("Janus error 430: Invalid element type (room should be a "
                             "positive integer)")
    join = {"request": "join", "room": 1600, "id": 77, "display": "box"}
    assert in_server_kind(join, wants_string) == {**join, "room": "1600", "id": "77"}
    named = in_kind_of("1600", join)
    assert named == {**join, "room": "1600", "id": "77"}
    assert in_server_kind(named, wants_string) is None  # already strings: not about kinds
    assert in_server_kind(named, wants_number) == join  # back to numbers
    with pytest.raises(NoSuchRoom, match=r"set room\.room to the room's number"):
        in_server_kind({**join, "room": "lobby"}, wants_number)
    assert in_server_kind(join, RoomError("Janus error 426: No such room (1600)")) is None
    assert (wire_id("77", 1600), wire_id("77", "1600"), wire_id("a-b", "lobby")) == \
        (77, "77", "a-b")


def test_a_guest_joins_the_room_in_the_kind_the_server_takes(
        network: Network, named_janus: JanusServer, make_peer: Any, tmp_path: Path) -> None:
    """The box's config says 1600; the server names the room "1600". A guest of the
    page's room proxy joins (the proxy puts the box's room in, as the server takes it)."""
    import aiohttp

    from services.web.passwords import reset
    from tests.guest.test_room_proxy import URL, _login, join_as_guest
    from tests.harness.appliance import ApplianceProcess
    from tests.harness.netns import NsLoop
    from tests.harness.polling import wait_for

    host = network.add_host("gbox")
    app = ApplianceProcess(host, tmp_path / "box", {
        "room": {"server": named_janus.url, "room": NUMBERED, "display_name": "box"},
        "sim": {"mic": "tone:440"}, "video": {"enabled": False},
        "web": {"listen": "127.0.0.1:8080"}})
    password = reset(app.state_dir)
    app.start()

    async def guest() -> dict[str, Any]:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as admin, \
                aiohttp.ClientSession() as http:
            csrf = await _login(admin, password)
            async with admin.post(f"{URL}/api/guest-links", json={"ttl_seconds": 600},
                                  headers={"X-CSRF-Token": csrf}) as r:
                token = (await r.json())["path"].split("guest=", 1)[1]
            async with http.ws_connect(f"{URL}/api/room/ws?guest={token}",
                                       protocols=("janus-protocol",)) as ws:
                joined = (await join_as_guest(ws))["joined"]  # no room: the proxy's
                return dict(joined["plugindata"]["data"])

    try:
        there = make_peer("there", str(NUMBERED), tone=None, url=named_janus.url)
        there.call(lambda s: s.join())
        wait_tone(there.speaker_path, 440, timeout=40)  # the box is in "1600"
        loop = NsLoop(host)
        try:
            data = loop.run(guest(), 60)
        finally:
            loop.close()
        assert data.get("videoroom") == "joined" and data.get("room") == str(NUMBERED), data
        assert "box" in [p.get("display") for p in data.get("publishers", [])], data
        # (the guest has left again: its socket closed with the scenario)
        wait_for(lambda: any(str(d.get("display", "")).endswith("Ann")
                             for d in there.names("member-joined")), 20,
                 "the guest seen in the room")
    finally:
        app.stop()

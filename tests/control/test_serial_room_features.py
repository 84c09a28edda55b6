"""Room status, metadata, requests to speak and chat moderation from the serial line of a
fully wired appliance in a real Janus room, with a moderator box and a listener box as
room peers in other namespaces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.room.feature_commands import RoomFeatureSettings
from services.room.features import RoomFeatures
from tests.control.boxes import TONE, make_box  # noqa: F401  (fixture)
from tests.control.support import Pty
from tests.control.test_serial_room import Av, W, wait_in_room
from tests.harness.fixtures import (  # noqa: F401  (fixtures)
    ROOM_SECRET,
    janus,
    make_peer,
    network,
    room_number,
)
from tests.harness.peers import RoomPeer
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(180)]


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "ttyAV")
    yield p
    p.close()


def features(peer: RoomPeer) -> RoomFeatures:
    f = RoomFeatures(RoomFeatureSettings(secret=peer.settings.secret), peer.session,
                     emit=peer._record)
    peer.session.extension = f
    return f


def test_listener_hand_asks_to_speak(make_box, make_peer, room_number, pty) -> None:  # noqa: F811
    """The listener box asks with its hand button and, accepted, is heard."""
    box = make_box(room_number, {"buttons": {"hand": 25}}, serial={"port": str(pty.link)},
                   room={"secret": ROOM_SECRET, "role": "listener", "speak_timeout": 2})
    av = Av(pty)
    assert av.read_line(W).startswith("EV ready version=")
    mod = make_peer("mod", room_number, tone=None, secret=ROOM_SECRET)
    fm = features(mod)
    mod.call(lambda s: s.join())
    mod.call(lambda s: fm.set_status("live", "Welcome"))  # before the box is there
    assert av.ask("JOIN") == "OK JOIN state=joining"
    wait_in_room(av)
    # The late-joining box catches up with the status and notice.
    av.ev("EV room-meta ", "status=live", "notice=Welcome")
    assert re.match(r"OK META status=live notice=Welcome meta=\S+ requests=\"?\"? "
                    r"chat_locked=off", av.ask("META?")), av.ask("META?")
    box_id = mod.wait_for(lambda: next((m.id for m in mod.session.members()
                                        if m.display == "box"), None), W, "box joined")

    # The hand button on a listener asks to speak; a timeout says so (2 s here).
    box.click("hand")
    av.ev("EV publish-request ", f"id={box_id}", "local=on", "timeout_s=2")
    mod.wait_event("publish-request", lambda d: d["id"] == box_id)
    av.ev("EV publish-answer ", "answer=timeout", "local=on")
    av.ev("EV hand ", "id=local", "raised=off")  # the request it raised is over
    assert "hand=off role=listener" in av.ask("STATUS?")

    # Asked again, accepted by the moderator: the box publishes and is heard.
    reply = av.ask("SPEAK REQUEST")
    request = re.fullmatch(r"OK SPEAK REQUEST request=(\w+) timeout_s=2", reply)
    assert request, reply
    mod.wait_event("publish-request", lambda d: d["request"] == request.group(1))
    mod.call(lambda s: fm.answer_speak(box_id, True))
    av.ev("EV publish-answer ", "answer=accepted", "local=on")
    box.wait(lambda: box.app.room is not None and box.app.room.controls.role == "publisher",
             what="publisher")
    wait_tone(mod.speaker_path, TONE)
    assert "role=publisher" in av.ask("STATUS?")
    assert av.ask("SPEAK REQUEST").startswith("ERR ALREADY_PUBLISHER")

    # The moderator sends it back to listening.
    mod.call(lambda s: fm.revoke_speak(box_id))
    av.ev("EV publish-answer ", "answer=revoked", "local=on")
    box.wait(lambda: box.app.room is not None and box.app.room.controls.role == "listener",
             what="listener again")
    wait_tone(mod.speaker_path, TONE, present=False)


def test_moderator_box_over_serial(make_box, make_peer, room_number, pty) -> None:  # noqa: F811
    """A moderator box answers requests and sets the room's status, notice, metadata and
    chat moderation."""
    box = make_box(room_number, {}, serial={"port": str(pty.link)},
                   room={"secret": ROOM_SECRET})
    av = Av(pty)
    assert av.read_line(W).startswith("EV ready version=")
    lis = make_peer("lis", room_number, tone=None, secret=ROOM_SECRET, role="listener")
    fl = features(lis)
    lis.call(lambda s: s.join())
    assert av.ask("JOIN") == "OK JOIN state=joining"
    wait_in_room(av)
    lis_id = lis.session.local_id

    lis.call(lambda s: fl.request_speak())
    av.ev("EV publish-request ", f"id={lis_id}", "local=off", "display=lis")
    assert av.ask(f"SPEAK REJECT {lis_id}") == f"OK SPEAK REJECT {lis_id}"
    assert lis.wait_event("publish-answer", lambda d: d["local"])["answer"] == "rejected"
    assert av.ask(f"SPEAK ACCEPT {lis_id}").startswith("ERR NO_SUCH_REQUEST")

    assert av.ask("ROOMSTATUS PAUSED") == "OK ROOMSTATUS PAUSED"
    av.ev("EV room-meta ", "status=paused")
    assert av.ask("NOTICE Back at 3 pm") == 'OK NOTICE "Back at 3 pm"'
    lis.wait_event("room-meta", lambda d: d["status"] == "paused" and
                   d["notice"] == "Back at 3 pm")
    box.wait(lambda: box.led_pattern("status") == "room-paused", what="paused LED")
    assert av.ask("ROOMSTATUS ENDED") == "OK ROOMSTATUS ENDED"
    box.wait(lambda: box.led_pattern("status") == "room-ended", what="ended LED")
    assert av.ask('META ROOM UPDATE {"topic": "budget"}') == \
        'OK META ROOM "{\\"topic\\":\\"budget\\"}"'
    lis.wait_event("room-meta", lambda d: d["meta"] == {"topic": "budget"})
    assert av.ask("META MEMBER SET {\"seat\": 4}").startswith("OK META MEMBER")
    lis.wait_event("member-meta", lambda d: d["meta"] == {"seat": 4})
    assert av.ask("META ROOM SET [1]").startswith("ERR BAD_ARGUMENT")

    assert av.ask("CHAT LOCK ON") == "OK CHAT LOCK ON"
    lis.wait_event("chat-moderation", lambda d: d["kind"] == "lock" and d["locked"])
    assert av.ask("SAY only moderators now") == "OK SAY"
    got = lis.wait_event("message", lambda d: d["text"] == "only moderators now")
    assert got["moderator"] is True
    assert av.ask(f"CHAT MUTE {lis_id} ON") == f"OK CHAT MUTE {lis_id} ON"
    lis.wait_event("chat-moderation", lambda d: d["kind"] == "mute" and d["local"])
    av.ev("EV chat-moderation ", "kind=mute", f"id={lis_id}", "muted=on")

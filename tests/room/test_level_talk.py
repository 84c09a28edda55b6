"""Who is talking in a room whose server does not say (Janus's default: no
``audiolevel_event``, as in its own sample demo room): decided from the audio level in
each member's packets, the way Janus decides, until the server speaks up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.room.level_talk import THRESHOLD, WINDOW, LevelTalk, packet_level
from services.room.roster import Roster
from tests.harness.fixtures import levelless_room, stock_room  # noqa: F401  (fixtures)
from tests.harness.netns import Network
from tests.room.conftest import wait_tone
from tests.room.test_audio_codecs import _ChromiumEnv
from tests.room.test_codecs import box_in  # noqa: F401  (fixture)


def test_a_window_of_levels_decides() -> None:
    told: list[tuple[str, bool]] = []
    talk = LevelTalk(lambda member, talking: told.append((member, talking)))
    for _ in range(WINDOW - 1):
        talk.heard("a", 20)
    assert told == []  # a decision per whole window, as Janus makes it
    talk.heard("a", 20)
    assert told == [("a", True)]
    for _ in range(WINDOW):
        talk.heard("a", THRESHOLD)  # not louder than the threshold: not talking
    assert told[-1] == ("a", False)
    talk.heard("b", 0)
    talk.forget("b")
    for _ in range(WINDOW - 1):
        talk.heard("b", 127)
    assert told[-1] == ("a", False)  # b's window started again after forget
    assert talk.server_told() and not talk.server_told()
    for _ in range(3 * WINDOW):
        talk.heard("a", 0)
    assert told[-1] == ("a", False)  # the server decides now
    talk.clear()
    for _ in range(WINDOW):
        talk.heard("a", 0)
    assert told[-1] == ("a", True)  # a new stay: the levels again


def test_a_packet_without_a_level_takes_the_decoded_voices() -> None:
    class Voice:
        key = "ada"
        level_dbfs = -23.4

    heard: list[tuple[str, int]] = []
    packet_level(Voice(), lambda key, level: heard.append((key, level)), 40)
    packet_level(Voice(), lambda key, level: heard.append((key, level)), None)
    Voice.level_dbfs = float("-inf")  # nothing decoded yet, or digital silence
    packet_level(Voice(), lambda key, level: heard.append((key, level)), None)
    assert heard == [("ada", 40), ("ada", 23), ("ada", 127)]


def test_a_dtx_sender_stops_talking_within_two_seconds() -> None:
    """Opus DTX: one packet every 400 ms while silent. The window closes after WINDOW_S,
    not after 25 such packets (10 s)."""
    from tests.harness.clock import Clock

    clock = Clock(100.0)
    told: list[tuple[str, bool]] = []
    talk = LevelTalk(lambda member, talking: told.append((member, talking)), clock=clock)
    for _ in range(WINDOW):
        clock.now += 0.02
        talk.heard("a", 20)
    assert told == [("a", True)]
    silent_at = clock.now
    while len(told) < 2 and clock.now - silent_at < 10:  # silence, DTX-paced
        clock.now += 0.4
        talk.heard("a", 127)
    assert told == [("a", True), ("a", False)]
    assert clock.now - silent_at < 1.7  # four DTX packets, not 25


def test_the_server_takes_over_from_the_levels() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    roster = Roster(lambda name, data: events.append((name, data)))
    for member in ("a", "b", "c"):
        roster.upsert(member, display=member)
    for member in ("a", "b"):
        for _ in range(WINDOW):
            roster.levels.heard(member, 10)
    assert [m.talking for m in roster.members()] == [True, True, False]
    roster.server_talking("c", True)
    # what the levels decided is dropped; the server's word holds
    assert [m.talking for m in roster.members()] == [False, False, True]
    for _ in range(WINDOW):
        roster.levels.heard("a", 10)
    assert roster.get("a").talking is False  # type: ignore[union-attr]
    roster.clear()
    assert not roster.levels.server_decides
    talking = [d for name, d in events if name == "talking"]
    assert talking[:3] == [{"id": "a", "talking": True}, {"id": "b", "talking": True},
                           {"id": "a", "talking": False}]


def _ada_talks_to_the_box(make_box: Any, make_peer: Any, room: int) -> tuple[Any, Any, str]:
    """The box and ada (a 600 Hz tone) in ``room``, once the box shows ada talking."""
    box = make_box(room)
    box.run(box.session.join())
    ada = make_peer("ada", room, tone="tone:600")
    ada.call(lambda s: s.join())
    ada_id = ada.session.local_id
    wait_tone(box.speaker, 600, timeout=20)
    box.run(box.events.wait_for("talking", timeout=10))
    assert box.events.named("talking")[0] == {"id": ada_id, "talking": True}
    assert not box.session.roster.levels.server_decides  # nobody else said it
    return box, ada, ada_id


def _mute_and_talk_again(box: Any, ada: Any, ada_id: str) -> None:
    """Ada mutes (the box shows her silent), then talks again (talking)."""
    ada.call(lambda s: s.set_mic(False))  # sends silence now
    box.run(box.events.wait_for("talking", count=2, timeout=10))
    assert box.events.named("talking")[1] == {"id": ada_id, "talking": False}
    ada.call(lambda s: s.set_mic(True))
    box.run(box.events.wait_for("talking", count=3, timeout=10))
    assert box.events.named("talking")[2] == {"id": ada_id, "talking": True}


@pytest.mark.janus
@pytest.mark.timeout(120)
def test_talking_in_a_stock_room(box_in: Any, make_peer: Any,  # noqa: F811
                                 stock_room: int) -> None:  # noqa: F811
    box, ada, ada_id = _ada_talks_to_the_box(box_in, make_peer, stock_room)
    [member] = box.session.members()
    assert member.id == ada_id and member.talking
    _mute_and_talk_again(box, ada, ada_id)


@pytest.mark.janus
@pytest.mark.timeout(120)
def test_talking_where_the_packets_carry_no_level(box_in: Any, make_peer: Any,  # noqa: F811
                                                  levelless_room: int) -> None:  # noqa: F811
    """A room whose server negotiates no audio level (``audiolevel_ext = false``) and
    tells nobody who talks: the level of each member's decoded voice decides."""
    box, ada, ada_id = _ada_talks_to_the_box(box_in, make_peer, levelless_room)
    stats = box.session.mixer.source_stats()[ada_id]
    assert stats["packets_without_level"] >= WINDOW  # no level in them: decoded it was
    _mute_and_talk_again(box, ada, ada_id)


@pytest.mark.janus
@pytest.mark.timeout(120)
def test_a_room_that_tells_keeps_its_word(box_in: Any, make_peer: Any,  # noqa: F811
                                          room_number: int) -> None:  # (conftest)
    """The harness's own rooms have ``audiolevel_event`` on: the server's ``talking``
    events decide there, and the levels are not used."""
    box = box_in(room_number)
    box.run(box.session.join())
    levels = box.session.roster.levels
    deadline = time.monotonic() + 5
    while not levels.server_decides and time.monotonic() < deadline:
        time.sleep(0.05)
    assert levels.server_decides  # from the room list, before anyone talked
    ada = make_peer("ada", room_number, tone="tone:600")
    ada.call(lambda s: s.join())
    box.run(box.events.wait_for("talking", timeout=15))
    assert box.events.named("talking")[0]["talking"] is True


@pytest.mark.janus
@pytest.mark.browser
@pytest.mark.timeout(120)
def test_chromium_talking_in_a_stock_room(box_in: Any, network: Network,  # noqa: F811
                                          janus: Any, stock_room: int,  # noqa: F811
                                          tmp_path: Path) -> None:
    """Chromium, as people run it (its audio level on every packet), in a room as Janus
    ships its demo room: the box shows it talking."""
    stats = _chromium_talks_to_the_box(box_in, network, janus, stock_room, tmp_path)
    assert stats["packets_without_level"] == 0  # Chromium's own levels decided


@pytest.mark.janus
@pytest.mark.browser
@pytest.mark.timeout(120)
def test_chromium_talking_where_the_packets_carry_no_level(
        box_in: Any, network: Network, janus: Any,  # noqa: F811
        levelless_room: int, tmp_path: Path) -> None:  # noqa: F811
    """Chromium in a room whose server negotiates no audio level: Chromium then sends
    none, and the box hears that it talks from its decoded voice."""
    stats = _chromium_talks_to_the_box(box_in, network, janus, levelless_room, tmp_path)
    assert stats["packets_without_level"] >= WINDOW


def _chromium_talks_to_the_box(make_box: Any, network: Network, janus: Any, room: int,
                               tmp_path: Path) -> dict[str, Any]:
    """Chromium publishes a 700 Hz tone into ``room``; the box shows it talking.
    Returns the box's mixer statistics for Chromium's voice."""
    from bench.bench_impaired import write_tone_wav
    from bench.chromium import ChromiumPeer

    box = make_box(room)
    box.run(box.session.join())
    page = ChromiumPeer(_ChromiumEnv(network, janus), "chrome", tmp_path,  # type: ignore[arg-type]
                        write_tone_wav(tmp_path / "tone700.wav", 700))
    chrome_id = str(870_000 + room)
    try:
        page.open(role="pub", room=room, feed=870_000 + room)
        page.server.wait("pub", "published", 60)
        box.run(box.events.wait_for("talking", timeout=20))
        assert box.events.named("talking")[0] == {"id": chrome_id, "talking": True}
        time.sleep(1.0)
        assert [m.talking for m in box.session.members()] == [True]
        return dict(box.session.mixer.source_stats()[chrome_id])
    finally:
        page.close()

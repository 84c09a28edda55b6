"""Rooms whose VideoRoom prefers G.711 or G.722 to Opus (``audiocodec = "pcmu,opus"``).

Members that offer those codecs publish them there (Janus takes the room's first codec
the offer has): Chromium and aiortc offer all three. The box must play them as the
voices they are; it offers only Opus itself, so it still publishes Opus in such a room,
and a member that offers only Opus (another box) hears it.

The G.711/G.722 member is a plain aiortc client (:mod:`bench.plain_aiortc`) in its own
namespace, sending a 700 Hz tone.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import plain_aiortc
from services.room.api import RoomState
from services.room.negotiation import answered_codec
from tests.harness.audio import dominant_hz, tone_power, wav_tail
from tests.harness.fixtures import room_with_audio_codec  # noqa: F401  (fixture)
from tests.harness.impair import Impairment
from tests.harness.netns import Network
from tests.room.conftest import wait_tone
from tests.room.test_codecs import box_in  # noqa: F401  (fixture)

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]

_names = itertools.count()  # hosts of the module's network


@pytest.fixture
def plain_member(network: Network, janus: Any) -> Iterator[Any]:
    procs: list[Any] = []

    def start(room: int, tone: str, up: Impairment | None = None) -> Any:
        name = f"plain{next(_names)}"
        host = network.add_impaired_host(name, up=up) if up else network.add_host(name)
        proc = plain_aiortc.launch(host, janus.url, room, 60.0, "320", "240", "15", tone)
        procs.append(proc)
        plain_aiortc.wait_joined(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def _member_audio(box: Any) -> tuple[str, dict[str, Any]]:
    """(member id, announced audio stream) of the one publisher the box sees."""
    backend = box.session._backend
    [(member_id, info)] = [(k, v) for k, v in backend.publishers.items()
                           if k != box.session.local_id]
    [audio] = [st for st in info["streams"] if st["type"] == "audio"]
    return member_id, audio


def _another_box_sees(box: Any, make_peer: Any, room: int) -> tuple[Any, str]:
    """Another box (it offers only Opus) joins and sees the box publish: (it, box id)."""
    ada = make_peer("ada", room, tone=None)
    ada.call(lambda s: s.join())
    box_id = box.session.local_id
    ada.wait_for(lambda: box_id in ada.session._backend.publishers, what="the box")
    return ada, box_id


def _announced_audio(peer: Any, member_id: str) -> list[str]:
    """The audio codecs Janus announced to ``peer`` for ``member_id``'s streams."""
    streams = peer.session._backend.publishers[member_id]["streams"]
    return [st["codec"] for st in streams if st["type"] == "audio"]


@pytest.mark.parametrize("audiocodec", ["pcmu,opus", "pcma,opus", "g722,opus"])
def test_the_box_plays_a_member_who_publishes_g711_or_g722(
        audiocodec: str, box_in: Any, plain_member: Any, make_peer: Any,  # noqa: F811
        room_with_audio_codec: Any) -> None:  # noqa: F811
    room = room_with_audio_codec(audiocodec)
    chosen = audiocodec.split(",")[0]
    box = box_in(room)
    box.run(box.session.join())
    plain_member(room, "tone:700")
    wait_tone(box.speaker, 700, timeout=20)
    time.sleep(3.0)

    # the member did publish the room's first codec, and the box decoded it
    member_id, audio = _member_audio(box)
    assert audio["codec"] == chosen
    stats = box.session.mixer.source_stats()[member_id]
    assert stats["codec"] == chosen
    tail = wav_tail(box.speaker, 2.0)
    assert abs(dominant_hz(tail) - 700) < 15
    assert tone_power(tail, 700) > 0.8, tone_power(tail, 700)
    assert stats["concealed_pct"] < 2, stats
    assert stats["fec"] == 0

    # the box still publishes Opus there, and a member that takes only Opus hears it
    ada, box_id = _another_box_sees(box, make_peer, room)
    assert _announced_audio(ada, box_id) == ["opus"]
    assert box.session.audio_codec == "opus" and box.events.named("room-warning") == []
    wait_tone(ada.speaker_path, 440, timeout=20)


def test_a_lossy_g711_voice_is_concealed_not_cut(box_in: Any, plain_member: Any,  # noqa: F811
                                                 room_with_audio_codec: Any) -> None:  # noqa: F811
    """10 % of the member's packets lost on its uplink: the box conceals each gap by
    repeating the voice (no FEC in G.711), and the tone stays the tone."""
    room = room_with_audio_codec("pcmu,opus")
    box = box_in(room)
    box.run(box.session.join())
    plain_member(room, "tone:700", up=Impairment(loss=0.10))
    wait_tone(box.speaker, 700, timeout=20)
    time.sleep(8.0)
    member_id, audio = _member_audio(box)
    assert audio["codec"] == "pcmu"
    stats = box.session.mixer.source_stats()[member_id]
    assert stats["lost"] >= 10, stats
    assert stats["fec"] == 0, stats  # G.711 payloads are never read as Opus FEC
    assert stats["plc_replaced"] >= 10, stats  # the voice repeated, not silence
    tail = wav_tail(box.speaker, 4.0)
    assert tone_power(tail, 700) > 0.6, tone_power(tail, 700)


def test_in_a_room_without_opus_the_box_sends_g711(box_in: Any, plain_member: Any,  # noqa: F811
                                                   make_peer: Any,
                                                   room_with_audio_codec: Any) -> None:  # noqa: F811
    """``audiocodec = "pcmu"``: the room refuses the box's Opus offer (``a=inactive``);
    the box offers G.711 and G.722 instead and sends the one the room takes, and it
    hears the room as before. Before, the publish failed and the box never got in."""
    room = room_with_audio_codec("pcmu")
    box = box_in(room)
    box.run(box.session.join())
    assert box.session.state == RoomState.IN_ROOM
    plain_member(room, "tone:700")
    wait_tone(box.speaker, 700, timeout=20)

    ada, box_id = _another_box_sees(box, make_peer, room)
    assert _announced_audio(ada, box_id) == ["pcmu"]
    assert box.session.audio_codec == "pcmu"
    [warning] = box.events.named("room-warning")
    assert warning["code"] == "AUDIO_NARROWBAND" and warning["codec"] == "pcmu"
    assert "pcmu" in warning["message"] and box.session.warnings == [warning]
    wait_tone(ada.speaker_path, 440, timeout=20)
    time.sleep(2.0)
    tail = wav_tail(ada.speaker_path, 1.5)  # the box's 440 Hz and the member's 700 Hz
    assert tone_power(tail, 440) > 0.25, tone_power(tail, 440)
    stats = ada.session.mixer.source_stats()[box_id]
    assert stats["codec"] == "pcmu" and stats["concealed_pct"] < 2, stats
    assert box.events.named("room-error") == []


class _ChromiumEnv:
    """What :class:`bench.chromium.ChromiumPeer` needs of its environment, from this
    module's network and Janus."""

    def __init__(self, network: Network, janus: Any) -> None:
        self.network, self.janus = network, janus

    def host(self, name: str, up: Impairment | None = None,
             down: Impairment | None = None) -> Any:
        name = f"{name}{next(_names)}"
        if up is None and down is None:
            return self.network.add_host(name)
        return self.network.add_impaired_host(name, up=up, down=down)


@pytest.mark.browser
@pytest.mark.parametrize("audiocodec", ["pcmu,opus", "pcmu"])
def test_chromium_and_the_box_hear_each_other(audiocodec: str, box_in: Any,  # noqa: F811
                                              network: Network, janus: Any,
                                              room_with_audio_codec: Any,  # noqa: F811
                                              tmp_path: Path) -> None:
    """Chromium, as people run it, in a room that prefers G.711: it publishes PCMU there
    and the box plays it; it hears the box, which sends Opus where the room takes it and
    PCMU where it takes nothing else."""
    from bench.bench_impaired import write_tone_wav
    from bench.chromium import ChromiumPeer

    room = room_with_audio_codec(audiocodec)
    box = box_in(room)
    box.run(box.session.join())
    page = ChromiumPeer(_ChromiumEnv(network, janus), "chrome", tmp_path,  # type: ignore[arg-type]
                        write_tone_wav(tmp_path / "tone700.wav", 700))
    try:
        page.open(role="tone", room=room, feed=880_000 + room,
                  other=box.session.local_id, hz=440)
        page.server.wait("tone", "subscribed", 60)
        wait_tone(box.speaker, 700, timeout=20)
        member_id, audio = _member_audio(box)
        assert member_id == str(880_000 + room) and audio["codec"] == "pcmu"
        assert box.session.mixer.source_stats()[member_id]["codec"] == "pcmu"
        time.sleep(3.0)
        tail = wav_tail(box.speaker, 2.0)
        assert abs(dominant_hz(tail) - 700) < 15
        assert tone_power(tail, 700) > 0.8, tone_power(tail, 700)
        page.server.take("tone", "levels")
        time.sleep(2.5)
        levels = [lv for batch in page.server.take("tone", "levels") for _, lv in batch]
        assert len(levels) >= 50 and sorted(levels)[len(levels) // 2] > 0.1, levels[-20:]
        # the box sends Opus where the room takes it, PCMU where it takes nothing else
        answer = box.session._backend.pub_pc.remoteDescription.sdp
        sent = "pcmu" if audiocodec == "pcmu" else "opus"
        assert answered_codec(answer, None, "audio") == sent
    finally:
        page.close()


def test_a_reused_subscription_slot_changes_codec(box_in: Any, plain_member: Any,  # noqa: F811
                                                  make_peer: Any,
                                                  room_with_audio_codec: Any) -> None:  # noqa: F811
    """An Opus member leaves and a PCMU member joins: Janus gives the newcomer the
    subscription's free audio slot (the same mid), and the box's receiver for that slot
    now carries PCMU. The box follows the codec and plays the newcomer."""
    room = room_with_audio_codec("pcmu,opus")
    box = box_in(room)
    box.run(box.session.join())
    ada = make_peer("ada", room, tone="tone:600")
    ada.call(lambda s: s.join())
    wait_tone(box.speaker, 600, timeout=20)
    backend = box.session._backend
    [(mid, (ada_id, _))] = backend._mid_feed.items()
    ada.call(lambda s: s.leave())
    wait_tone(box.speaker, 600, present=False, timeout=10)
    plain_member(room, "tone:700")
    wait_tone(box.speaker, 700, timeout=20)
    member_id, audio = _member_audio(box)
    assert audio["codec"] == "pcmu" and member_id != ada_id
    assert backend._mid_feed[mid][0] == member_id  # the same slot
    stats = box.session.mixer.source_stats()[member_id]
    assert stats["codec"] == "pcmu"
    time.sleep(2.0)
    tail = wav_tail(box.speaker, 1.5)
    assert tone_power(tail, 700) > 0.8 and tone_power(tail, 600) < 0.05


def test_a_room_without_any_of_our_audio_codecs(box_in: Any, make_peer: Any,  # noqa: F811
                                                room_with_audio_codec: Any) -> None:  # noqa: F811
    """``audiocodec = "l16-48"`` (raw PCM, which the box does not send): the box offers
    Opus, then G.711 and G.722, is refused both times, and publishes its video alone,
    with a warning, instead of failing and retrying for as long as the room is so set.
    Its mic stays closed."""
    room = room_with_audio_codec("l16-48")
    box = box_in(room)
    box.run(box.session.join())
    assert box.session.state == RoomState.IN_ROOM
    [warning] = box.events.named("room-warning")
    assert warning["code"] == "AUDIO_CODEC_UNSUPPORTED"
    assert warning["room_codecs"] == ["l16-48"] and "without its mic" in warning["message"]
    assert box.session.audio_codec is None and box.session.video_codec is not None
    assert not box.media.status()["mic"]["open"]
    viewer = make_peer("viewer", room, tone=None, collect_video=True)
    viewer.call(lambda s: s.join())
    box_id = box.session.local_id
    viewer.wait_for(lambda: len(viewer.video_numbers.get(box_id, [])) > 30, timeout=30,
                    what="the box's video")
    # Janus still lists the refused audio section of the box's first offer, with codec
    # "none" (it keeps a publisher's streams by index across its publishes)
    assert set(_announced_audio(viewer, box_id)) <= {"none"}
    time.sleep(1.0)
    assert box.events.named("reconnecting") == [] and box.events.named("room-error") == []

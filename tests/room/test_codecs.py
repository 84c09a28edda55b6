"""The box sends exactly the video codec the room chose, in rooms of every codec list.

The box is the appliance's own pair (a :class:`MediaService` with the shared encoder and
a :class:`JanusRoomSession` fed by it) in its own namespace; a plain in-process member
subscribes to it through the real Janus and decodes its video with aiortc's decoders,
reading the frame numbers drawn in the sim camera's strip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.audio.sim import SimSpeaker
from services.media.packets import PacketSubscription
from services.media.service import MediaService
from services.room.api import Controls, RoomState
from services.room.context import RoomSettings
from services.room.session import JanusRoomSession
from tests.harness.netns import Network, NsLoop
from tests.media.helpers import Events, make_service
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(120)]


class Box:
    """The box's media service and room session on their own loop in a namespace."""

    def __init__(self, network: Network, url: str, room: int, tmp_path: Path,
                 **settings: Any) -> None:
        self.loop = NsLoop(network.add_host("box"))
        self.events = Events()
        self.speaker = tmp_path / "box-speaker.wav"

        async def build() -> tuple[MediaService, JanusRoomSession]:
            media = make_service(tmp_path, self.events)
            room_settings = RoomSettings(url=url, room=room, display="box", **settings)
            session = JanusRoomSession(room_settings, mic=media.mic_for_room(),
                                       speaker=SimSpeaker(self.speaker),
                                       video_track_factory=media.video_track,
                                       emit=self.events, controls=Controls())
            return media, session

        self.media, self.session = self.loop.run(build())

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.loop.run(coro, timeout)

    def close(self) -> None:
        try:
            self.run(self.session.close(), 10)
            self.run(self.media.close(), 10)
        finally:
            self.loop.close()


@pytest.fixture
def box_in(network: Network, janus: Any, tmp_path: Path) -> Iterator[Any]:
    boxes: list[Box] = []

    def make(room: int) -> Box:
        box = Box(network, janus.url, room, tmp_path)
        boxes.append(box)
        return box

    try:
        yield make
    finally:
        for box in boxes:
            box.close()


def _sdp_video_codecs(sdp: str) -> set[str]:
    """Codec names of the video sections of an SDP (without rtx)."""
    names, in_video = set(), False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video") and not line.startswith("m=video 0 ")
        elif in_video and line.startswith("a=rtpmap:"):
            name = line.split()[1].split("/")[0].lower()
            if name != "rtx":
                names.add(name)
    return names


def _viewer_decodes(box: Box, make_peer: Any, room: int, frames: int
                    ) -> tuple[Any, str, list[int]]:
    """A member who joins ``room`` and decodes more than ``frames`` of the box's frames,
    in order and none twice: (the member, the box's id, the frame numbers)."""
    viewer = make_peer("viewer", room, tone=None, collect_video=True)
    viewer.call(lambda s: s.join())
    box_id = box.session.local_id
    viewer.wait_for(lambda: len(viewer.video_numbers.get(box_id, [])) > frames, timeout=40,
                    what=f"{frames} decoded frames of the box")
    numbers = viewer.video_numbers[box_id]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    return viewer, box_id, numbers


@pytest.mark.parametrize("videocodec", ["vp8", "h264", "vp8,h264", "h264,vp8"])
def test_the_box_sends_the_codec_the_room_chose(videocodec: str, box_in: Any, make_peer: Any,
                                                room_with_codec: Any) -> None:
    room = room_with_codec(videocodec)
    chosen = videocodec.split(",")[0]  # Janus takes the room's first codec we offer
    box = box_in(room)
    box.run(box.session.join())
    assert box.session.state == RoomState.IN_ROOM
    assert box.session.video_codec == chosen
    # every frame the encoder produced in that codec, to count what the viewer missed
    probe: PacketSubscription = box.media.video.subscribe("probe", 100_000, codec=chosen)
    # the viewer decoded the box's frames in order, with fewer than 5 % missing
    viewer, box_id, numbers = _viewer_decodes(box, make_peer, room, 60)
    sent = {p.index for p in probe.drain()}
    span = {n for n in sent if numbers[0] <= n <= numbers[-1]}
    missing = 1 - len(span & set(numbers)) / len(span)
    assert missing < 0.05, f"{missing:.1%} of the box's frames missing"

    # the viewer got the codec the room chose: in Janus's announcement and in the SDP
    streams = viewer.session._backend.publishers[box_id]["streams"]
    assert [st["codec"] for st in streams if st["type"] == "video"] == [chosen]
    sub_sdp = viewer.session._backend.sub_pc.remoteDescription.sdp
    assert _sdp_video_codecs(sub_sdp) == {chosen}

    # the box encoded that codec only, and its room track never refused a packet
    assert box.media.video.active_codecs == [chosen]
    [track] = box.media._room_tracks
    assert track.codec == chosen and track.refused == 0 and track.packets > 60
    status = box.media.status()["encoder"]
    assert status["codecs"] == [chosen]
    assert status["encodes"][chosen]["subscriber_names"] == ["probe", "room"]
    assert box.events.named("room-warning") == []


def test_a_vp8_room_with_recording_runs_both_encodes(box_in: Any, make_peer: Any,
                                                     room_with_codec: Any,
                                                     tmp_path: Path) -> None:
    from tests.media.conftest import is_increasing, probe

    room = room_with_codec("vp8")
    box = box_in(room)
    box.run(box.session.join())
    box.run(box.media.start_recording(), 10)
    viewer = make_peer("viewer", room, tone=None, collect_video=True)
    viewer.call(lambda s: s.join())
    box_id = box.session.local_id
    viewer.wait_for(lambda: len(viewer.video_numbers.get(box_id, [])) > 45, timeout=40,
                    what="the box's VP8 video")
    encoder = box.media.status()["encoder"]
    assert sorted(encoder["codecs"]) == ["h264", "vp8"], encoder
    assert encoder["encodes"]["vp8"]["encoder"] == "libvpx"
    assert encoder["encodes"]["h264"]["encoder"] == "libx264"
    assert encoder["encodes"]["vp8"]["subscriber_names"] == ["room"]
    assert encoder["encodes"]["h264"]["subscriber_names"] == ["recorder"]
    for codec in ("h264", "vp8"):
        assert encoder["encodes"][codec]["frames_encoded"] > 30, encoder
    box.run(box.media.stop_recording(), 10)
    [segment] = box.events.named("recording-segment")
    got = probe(tmp_path / "recordings" / segment["file"])
    assert got["video_codec"] == "h264" and is_increasing(got["frame_numbers"])
    numbers = viewer.video_numbers[box_id]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize("videocodec", ["vp9", "av1"])
def test_a_room_without_our_codecs_gets_audio_and_a_warning(videocodec: str, box_in: Any,
                                                            make_peer: Any,
                                                            room_with_codec: Any) -> None:
    room = room_with_codec(videocodec)
    box = box_in(room)
    ada = make_peer("ada", room, tone="tone:880")
    ada.call(lambda s: s.join())
    box.run(box.session.join())
    assert box.session.state == RoomState.IN_ROOM
    [warning] = box.events.named("room-warning")
    assert warning["code"] == "VIDEO_CODEC_UNSUPPORTED"
    assert warning["room_codecs"] == [videocodec]
    assert videocodec in warning["message"]
    assert box.session.warnings == [warning]
    assert box.session.video_codec is None
    assert box.events.named("room-error") == []
    # audio flows both ways, and the box stays in the room
    wait_tone(ada.speaker_path, 440, timeout=20)
    wait_tone(box.speaker, 880, timeout=20)
    box_id = box.session.local_id
    ada.wait_for(lambda: any(m.id == box_id and m.has_audio and not m.has_video
                             for m in ada.session.members()), what="the box, audio only")
    time.sleep(1.0)
    assert box.session.state == RoomState.IN_ROOM
    assert box.events.named("reconnecting") == []
    # nothing encoded video for a room that cannot take it
    assert box.media.video.active_codecs == []


def _h264_profiles(sdp: str) -> list[str]:
    """The profile-level-ids of an SDP's H.264 formats, in its order."""
    h264 = {line.split()[0].split(":")[1] for line in sdp.splitlines()
            if line.startswith("a=rtpmap:") and "H264/" in line}
    return [param.split("=")[1].lower() for line in sdp.splitlines()
            if line.startswith("a=fmtp:") and line.split()[0].split(":")[1] in h264
            for param in line.split(" ", 1)[1].split(";") if param.startswith("profile-level-id")]


@pytest.mark.parametrize("profile", [None, "42001f", "4d001f", "640c1f"],
                         ids=["any", "baseline", "main", "high"])
def test_h264_rooms_of_each_profile(profile: str | None, box_in: Any, make_peer: Any) -> None:
    """An H.264-only room as sites set its ``h264_profile`` (Janus's default: none, any
    profile): Janus answers the box with a profile the box offered (its x264 stream is
    constrained baseline, which every H.264 decoder takes), and a member decodes it."""
    from tests.harness.fixtures import H264_PROFILE_ROOMS

    room = H264_PROFILE_ROOMS[profile]
    box = box_in(room)
    box.run(box.session.join())
    assert box.session.video_codec == "h264"
    _viewer_decodes(box, make_peer, room, 30)
    backend = box.session._backend
    offered = _h264_profiles(backend.pub_pc.localDescription.sdp)
    [answered] = _h264_profiles(backend.pub_pc.remoteDescription.sdp)
    assert answered in offered, (answered, offered)
    if profile in offered:
        assert answered == profile
    assert box.events.named("room-warning") == []

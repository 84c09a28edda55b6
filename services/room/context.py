"""What a backend (one join of one plugin) gets from the room session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from drivers.base import Emit
from services.room.api import Controls, Role
from services.room.janus.transport import JanusConnection
from services.room.mixer import RemoteAudioMixer
from services.room.opus_send import OpusSendSettings
from services.room.roster import Roster

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack


@dataclass(frozen=True)
class RoomSettings:
    """The room part of the config, as the session uses it."""

    url: str
    backend: Literal["videoroom", "audiobridge"] = "videoroom"
    #: a number, or a name on a server with string ids (services/room/janus/room_ids.py)
    room: int | str = 1234
    display: str = "edgeroom"
    pin: str | None = None
    secret: str | None = None
    api_secret: str | None = None
    token: str | None = None
    #: PEM file a wss:// server's certificate is checked against (None: the system's CAs)
    ca_file: str | None = None
    role: Role = "publisher"
    #: Subscribe to other members' video: always, never, or ("auto") only while something
    #: on the box consumes it (the session's remote-video consumer).
    receive_video: bool | Literal["auto"] = "auto"
    send_video: bool = True
    #: How the mic is encoded (Opus frame length, bitrate, DTX).
    opus: OpusSendSettings = OpusSendSettings()


class Backend(Protocol):
    """One stay in a room through one Janus plugin (created anew on every (re)join)."""

    local_id: str
    #: the room as the server takes it: a number, or a string (room_ids)
    room: int | str

    async def enter(self) -> None: ...

    async def exit(self) -> None: ...

    async def set_role(self, role: Role) -> None: ...

    async def update_mic(self) -> None:
        """The mic control changed (the server may want to know, e.g. AudioBridge)."""
        ...

    async def moderate(self, member_id: str, muted: bool) -> None: ...

    async def kick(self, member_id: str) -> None: ...

    def peer_connections(self) -> dict[str, Any]:
        """label -> RTCPeerConnection (for stats)."""
        ...

    def member_receivers(self) -> dict[str, list[Any]]:
        """member id -> the RTCRtpReceivers of their streams (for stats)."""
        ...


class RoomContext:
    """Shared state for one attempt; ``failed`` resolves with the reason media or
    signaling broke, ``kicked`` when the server removed us."""

    def __init__(self, conn: JanusConnection, settings: RoomSettings, controls: Controls,
                 roster: Roster, mixer: RemoteAudioMixer, emit: Emit, member_id: int,
                 mic_track: Callable[[], MediaStreamTrack],
                 video_track: Callable[[], MediaStreamTrack | None],
                 on_remote_video: Callable[[str, Any], None],
                 on_remote_audio: Callable[[str, MediaStreamTrack], None],
                 on_local_talking: Callable[[bool], None],
                 on_moderated: Callable[[str, bool], None]) -> None:
        self.conn = conn
        self.settings = settings
        self.controls = controls
        self.roster = roster
        self.mixer = mixer
        self.emit = emit
        self.member_id = member_id
        self.mic_track = mic_track
        self.video_track = video_track
        self.on_remote_video = on_remote_video
        self.on_remote_audio = on_remote_audio
        self.on_local_talking = on_local_talking
        self.on_moderated = on_moderated
        #: Called with our member id as soon as the plugin accepted us (before media is
        #: up), so the session can open the message channel meanwhile.
        self.on_joined: Callable[[str], None] = lambda member_id: None
        #: Called with the video codec the room chose for our camera, or with None and the
        #: room's codecs (empty when unknown) when the room refused every codec we offer.
        self.on_video_codec: Callable[[str | None, list[str] | None], None] = (
            lambda codec, room_codecs: None)
        #: Called with a ``room-warning`` to hold under its code, or None to drop it.
        self.on_warning: Callable[[str, dict[str, Any] | None], None] = (
            lambda code, warning: None)
        #: Called with the audio codec the room took for our mic (opus, pcmu, pcma, g722),
        #: or None when it takes none of it (the mic is not sent: it stays closed).
        self.on_audio_codec: Callable[[str | None], None] = lambda codec: None
        #: Whether to subscribe to remote video now.
        self.wants_video: Callable[[], bool] = lambda: settings.receive_video is True
        #: Whether something takes the received video frames now (else none is decoded).
        self.shows_video: Callable[[], bool] = lambda: True
        #: Of the subscribed video, whose is shown (the others are paused at the server).
        self.wants_member_video: Callable[[str], bool] = lambda member_id: True
        loop = asyncio.get_running_loop()
        self.failed: asyncio.Future[str] = loop.create_future()
        self.kicked: asyncio.Future[str] = loop.create_future()

    def fail(self, reason: str) -> None:
        if not self.failed.done():
            self.failed.set_result(reason)

    def kick(self, reason: str) -> None:
        if not self.kicked.done():
            self.kicked.set_result(reason)

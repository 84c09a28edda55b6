"""An in-process appliance (simulated hardware, temp state dir) with its web server.

The room is :class:`FakeRoom`: an in-memory implementation of the ``RoomSession``
protocol that publishes the same events a real session does, so the web layer, the
real dispatcher and the real page are exercised without a room server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from device import logs
from device.app import Appliance
from device.config import Config, WebConfig
from drivers.base import Emit
from services.room.api import Controls, Member, NotInRoom, RoomState
from services.room.feature_commands import RoomFeatureSettings
from services.room.features import RoomFeatures
from services.web import WebServer
from services.web.passwords import reset

TIMEOUT = 10.0


class FakeRoom:
    """A room without a server: join/leave/controls change state and publish events."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._state = RoomState.IDLE
        self._controls = Controls()
        self._members: dict[str, Member] = {}
        self.room_id = 1234
        self.sent: list[tuple[str, str | None]] = []

    @property
    def state(self) -> RoomState:
        return self._state

    @property
    def controls(self) -> Controls:
        return self._controls

    def _set_state(self, new: RoomState, reason: str = "") -> None:
        old, self._state = self._state, new
        self._emit("room-state", {"old": str(old), "new": str(new), "reason": reason})

    def _changed(self) -> None:
        self._emit("controls", self._controls.to_dict())

    async def join(self) -> None:
        self._set_state(RoomState.JOINING)
        await asyncio.sleep(0.05)
        self._set_state(RoomState.IN_ROOM)

    async def set_room(self, room: int) -> None:
        self.room_id = room

    async def leave(self) -> None:
        if self._state != RoomState.IDLE:
            self._members.clear()
            self._set_state(RoomState.IDLE, "left")

    def add_member(self, member: Member) -> None:
        self._members[member.id] = member
        self._emit("member-joined", member.to_dict())

    def set_talking(self, member_id: str, talking: bool) -> None:
        self._members[member_id].talking = talking
        self._emit("talking", {"id": member_id, "talking": talking})

    def members(self) -> list[Member]:
        return list(self._members.values())

    def stats(self) -> dict[str, Any]:
        if self._state != RoomState.IN_ROOM:
            return {}
        return {"up": {"bitrate_kbps": 512.0, "rtt_ms": 12.5, "loss": 0.0},
                "down": {"bitrate_kbps": 800.0, "jitter_ms": 3.1},
                "members": {m.id: {"bitrate_kbps": 400.0, "delay_ms": 24.4, "target_ms": 14.0,
                                   "concealed_pct": 0.5} for m in self._members.values()}}

    async def set_mic(self, enabled: bool) -> None:
        self._controls.mic_enabled = enabled
        self._changed()

    async def set_mic_volume(self, percent: int) -> None:
        self._controls.mic_volume = percent
        self._changed()

    async def set_speaker(self, enabled: bool) -> None:
        self._controls.speaker_enabled = enabled
        self._changed()

    async def set_speaker_volume(self, percent: int) -> None:
        self._controls.speaker_volume = percent
        self._changed()

    async def set_video(self, enabled: bool) -> None:
        self._controls.video_enabled = enabled
        self._changed()

    async def set_deaf(self, deaf: bool) -> None:
        self._controls.deaf = deaf
        self._changed()

    async def mute_member(self, member_id: str, muted: bool) -> None:
        (self._controls.muted_members.add if muted else self._controls.muted_members.discard)(
            member_id)
        self._members[member_id].locally_muted = muted
        self._emit("member-updated", self._members[member_id].to_dict())
        self._changed()

    async def mute_all(self, muted: bool) -> None:
        self._controls.mute_all = muted
        self._changed()

    async def moderate(self, member_id: str, muted: bool) -> None:
        raise NotInRoom("moderation needs room.secret")

    async def kick(self, member_id: str) -> None:
        raise NotInRoom("kicking needs room.secret")

    async def raise_hand(self, raised: bool) -> None:
        self._controls.hand_raised = raised
        self._emit("hand", {"id": "local", "raised": raised})
        self._changed()

    async def send_text(self, text: str, to: str | None = None) -> None:
        self.sent.append((text, to))

    async def send_custom(self, cmd: str, payload: Any, priority: str = "high") -> None:
        self.sent.append((cmd, None))

    async def set_role(self, role: str) -> None:
        self._controls.role = role  # type: ignore[assignment]
        self._changed()

    async def close(self) -> None:
        await self.leave()

    # -- what the room features ask of a session (services.room.extension.RoomLink) ----

    @property
    def local_id(self) -> str | None:
        return "1" if self._state == RoomState.IN_ROOM else None

    @property
    def room_number(self) -> int:
        return self.room_id

    def post_custom(self, cmd: str, payload: Any, to: str | None = None) -> None:
        self.sent.append((cmd, to))


@dataclass
class FakeButtons:
    """The ``extras["buttons"]`` shape the gpio service provides in --sim."""

    roles: list[str] = field(default_factory=lambda: ["call", "mute"])
    pressed: list[tuple[str, str]] = field(default_factory=list)

    def press(self, role: str) -> None:
        self.pressed.append((role, "press"))

    async def release(self, role: str) -> None:
        self.pressed.append((role, "release"))


class FakeMedia:
    """Recording and streaming that only remember what they were asked."""

    def __init__(self) -> None:
        self.recording = False
        self.streaming: str | None = None

    async def start_recording(self) -> dict[str, Any]:
        self.recording = True
        return {"recording": True}

    async def stop_recording(self) -> dict[str, Any]:
        self.recording = False
        return {"recording": False}

    async def start_stream(self, url: str | None = None) -> dict[str, Any]:
        self.streaming = url
        return {"streaming": True}

    async def stop_stream(self) -> dict[str, Any]:
        self.streaming = None
        return {"streaming": False}


class FakeCamera:
    """The ``extras["snapshot"]`` shape the camera service provides."""

    async def snapshot_jpeg(self) -> bytes:
        return b"\xff\xd8\xff\xe0fake\xff\xd9"


def make_appliance(tmp_path: Path, *, room: bool = True, full: bool = False,
                   secret: str | None = None) -> Appliance:
    """``full``: also recording/streaming, virtual buttons and a camera snapshot."""
    config = Config(web=WebConfig(listen="127.0.0.1:0"))
    appliance = Appliance(config, tmp_path / "edgeroom.toml", tmp_path / "state", sim=True)
    appliance.bus.bind(asyncio.get_running_loop())
    if room:
        fake = FakeRoom(appliance.bus.publish)
        appliance.room = fake
        appliance.dispatcher.room = fake
        features = RoomFeatures(RoomFeatureSettings(secret=secret), fake,
                                emit=appliance.bus.publish)
        appliance.dispatcher.features = features
        appliance.status_providers.add("room_features", features.view)
    # The real playback manager and talking detector (nothing plays outside a room).
    from services.audio.talk import LocalTalkDetector, TalkSettings
    from services.playback.manager import PlaybackManager, PlaybackSettings

    appliance.dispatcher.playbacks = PlaybackManager(
        PlaybackSettings(tmp_path / "state", tmp_path / "state" / "playback-tts"),
        appliance.bus.publish)
    appliance.dispatcher.talk = LocalTalkDetector(TalkSettings(), lambda: None, lambda: False,
                                                  appliance.bus.publish)
    from device.live_devices import DeviceSwitcher

    appliance.dispatcher.devices = DeviceSwitcher(appliance)
    if full:
        from device.links import LinkControl, RoomMessenger

        appliance.dispatcher.media = FakeMedia()
        # links to 127.0.0.1:9, where nothing listens: they only retry
        appliance.dispatcher.links = LinkControl(config, appliance.bus.publish,
                                                 RoomMessenger(appliance))
        appliance.extras["buttons"] = FakeButtons()
        appliance.extras["snapshot"] = FakeCamera()
    return appliance


@dataclass
class Served:
    appliance: Appliance
    server: WebServer
    password: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def room(self) -> FakeRoom:
        assert isinstance(self.appliance.room, FakeRoom)
        return self.appliance.room


@pytest.fixture
def log_ring() -> Iterator[None]:
    """What ``edgeroom run`` sets up: INFO lines of our packages kept for the log tail."""
    saved = []
    for name in ("device", "services"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(logs.RING)
        logger.setLevel(logging.INFO)
    yield
    for logger, level in saved:
        logger.removeHandler(logs.RING)
        logger.setLevel(level)


@pytest.fixture
async def served(tmp_path: Path, log_ring: None) -> AsyncIterator[Served]:
    appliance = make_appliance(tmp_path)
    password = await asyncio.to_thread(reset, appliance.state_dir)
    server = WebServer(appliance)
    await asyncio.wait_for(server.start(), TIMEOUT)
    try:
        yield Served(appliance, server, password)
    finally:
        await asyncio.wait_for(server.close(), TIMEOUT)
        await asyncio.wait_for(appliance.dispatcher.close(), TIMEOUT)


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=TIMEOUT))


async def login(http: aiohttp.ClientSession, served: Served) -> str:
    """Log in; returns the CSRF token."""
    async with http.post(f"{served.url}/api/login", json={"password": served.password}) as r:
        assert r.status == 200, await r.text()
        token: str = (await r.json())["csrf_token"]
        return token


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with client() as session:
        yield session


class ServerThread:
    """The appliance and its web server on their own loop in a thread (for blocking
    clients such as schemathesis)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="web-test-loop",
                                       daemon=True)
        self.password = ""
        self.url = ""
        self.appliance: Appliance | None = None
        self._server: WebServer | None = None

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(TIMEOUT)
        return self

    async def _start(self) -> None:
        self.appliance = make_appliance(self.tmp_path, full=True)
        self.password = await asyncio.to_thread(reset, self.appliance.state_dir)
        self._server = WebServer(self.appliance)
        self.url = await self._server.start()

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.close()
        if self.appliance is not None:
            await self.appliance.dispatcher.close()

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@pytest.fixture
def server_thread(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(tmp_path) as st:
        yield st

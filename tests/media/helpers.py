"""Building blocks for the media tests: a media service on the sim camera and mic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.audio.sim import SimMic, SimSpeaker
from drivers.camera.sim import SimCamera
from services.media.service import MediaService
from services.room.api import Controls
from services.room.context import RoomSettings
from services.room.session import JanusRoomSession
from tests.harness.netns import NsLoop

#: Small frames keep the two shared cores free; the strip still fits (>= 160 px wide).
WIDTH, HEIGHT, FPS = 320, 240, 30


class Events:
    """Collects ``emit`` calls; :meth:`wait_for` waits for the n-th event of a name."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        self.items.append((time.monotonic(), name, dict(data)))
        self._changed.set()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for _, event, data in self.items if event == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 15.0,
                       where: Callable[[dict[str, Any]], bool] = lambda d: True
                       ) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                found = [d for d in self.named(name) if where(d)]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


def make_service(tmp_path: Path, events: Events, **kwargs: Any) -> MediaService:
    options: dict[str, Any] = {"record_dir": tmp_path / "recordings", "encoder": "libx264",
                               "bitrate_kbps": 600, "label": lambda: "room1234"}
    options.update(kwargs)
    return MediaService(lambda: SimCamera(WIDTH, HEIGHT, FPS),
                        lambda: SimMic("tone:440", state_dir=tmp_path),
                        emit=events, **options)


def media_box(loop: NsLoop, url: str, room: int, tmp_path: Path, events: Events,
              **kwargs: Any) -> tuple[MediaService, JanusRoomSession]:
    """A box on ``loop``: a media service (:func:`make_service`, ``kwargs`` to it) and a
    room session that publishes its mic and shared encoder into ``room`` at ``url``, and
    plays the room into a sim speaker (``box-speaker.wav``). Not joined yet."""

    async def build() -> tuple[MediaService, JanusRoomSession]:
        media = make_service(tmp_path, events, **kwargs)
        settings = RoomSettings(url=url, room=room, display="box")
        session = JanusRoomSession(settings, mic=media.mic_for_room(),
                                   speaker=SimSpeaker(tmp_path / "box-speaker.wav"),
                                   video_track_factory=media.video_track, emit=events,
                                   controls=Controls())
        return media, session

    return loop.run(build())

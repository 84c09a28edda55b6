"""In-process room sessions, each in its own namespace and event loop.

A :class:`RoomPeer` owns a :class:`~services.room.session.JanusRoomSession` with the sim
mic (a tone), the sim speaker (a WAV in ``workdir``) and optionally the sim camera, and
records every event the session emits, so tests can wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.audio.sim import SimMic, SimSpeaker
from services.room.api import Controls
from services.room.context import RoomSettings
from services.room.session import JanusRoomSession
from services.room.speaker_use import HOLD_S
from tests.harness.netns import Host, NsLoop

log = logging.getLogger(__name__)


class RoomPeer:
    def __init__(self, host: Host, workdir: Path, settings: RoomSettings, *,
                 tone: str | None = "tone:440", camera: bool = False,
                 collect_video: bool = False, mic_drift_ppm: float = 0.0,
                 speaker_drift_ppm: float = 0.0, speaker_hold_s: float = HOLD_S) -> None:
        self.host = host
        self.workdir = workdir
        self.settings = settings
        self.speaker_path = workdir / f"speaker-{host.name}.wav"
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.video_numbers: dict[str, list[int]] = {}  # received, per member
        #: (monotonic time decoded, frame number) of every frame received, per member
        self.video_arrivals: dict[str, list[tuple[float, int]]] = {}
        self.video_sent: list[int] = []  # frame numbers our camera handed to the encoder
        self.loop = NsLoop(host)
        self._tone = tone
        self._camera = camera
        self._collect_video = collect_video
        self._drift = (mic_drift_ppm, speaker_drift_ppm)
        self._hold = speaker_hold_s
        self.session: JanusRoomSession = self.loop.run(self._build())

    def __repr__(self) -> str:
        return f"<RoomPeer {self.host.name} {self.session!r}>"

    async def _build(self) -> JanusRoomSession:
        mic_ppm, speaker_ppm = self._drift
        mic = (SimMic(self._tone, state_dir=self.workdir, drift_ppm=mic_ppm)
               if self._tone else None)
        speaker = SimSpeaker(self.speaker_path, drift_ppm=speaker_ppm)
        factory = None
        if self._camera:
            from drivers.camera.sim import SimCamera
            from services.room.tracks import CameraTrack

            sent = self.video_sent

            class RecordingCameraTrack(CameraTrack):
                async def recv(self) -> Any:
                    frame = await super().recv()
                    sent.append(self.last_index)
                    return frame

            def factory() -> CameraTrack:
                return RecordingCameraTrack(SimCamera(320, 240, 15))

        return JanusRoomSession(self.settings, mic=mic, speaker=speaker,
                                video_track_factory=factory, emit=self._record,
                                controls=Controls(role=self.settings.role),
                                on_remote_video=self._on_video if self._collect_video else None,
                                speaker_hold_s=self._hold)

    def _record(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((time.monotonic(), name, data))

    def _on_video(self, member_id: str, frame: Any) -> None:
        from drivers.camera.strip import decode_strip

        info = decode_strip(frame)
        if info is not None:
            self.video_numbers.setdefault(member_id, []).append(info.frame_number)
            self.video_arrivals.setdefault(member_id, []).append(
                (time.monotonic(), info.frame_number))

    # -- driving it -------------------------------------------------------------------

    def call(self, fn: Callable[[JanusRoomSession], Any], timeout: float = 20.0) -> Any:
        """Run ``fn(session)`` (a coroutine function or plain function) on the peer's loop."""
        async def run() -> Any:
            result = fn(self.session)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return self.loop.run(run(), timeout)

    async def acall(self, fn: Callable[[JanusRoomSession], Any], timeout: float = 20.0) -> Any:
        return await asyncio.to_thread(self.call, fn, timeout)

    def names(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [d for _, n, d in self.events if n == name]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{self.host.name}: timed out waiting for {what}; "
                             f"state={self.session.state} events="
                             f"{[n for _, n, _ in self.events[-20:]]}")

    def wait_event(self, name: str, match: Callable[[dict[str, Any]], bool] = lambda d: True,
                   timeout: float = 15.0, since: float = 0.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            with self._lock:
                for t, n, d in self.events:
                    if n == name and t >= since and match(d):
                        return d
            return None

        result: dict[str, Any] = self.wait_for(find, timeout, f"event {name}")
        return result

    def close(self) -> None:
        try:
            self.loop.run(self.session.close(), 10)
        except Exception as exc:
            log.warning("closing %s: %s", self.host.name, exc)
        self.loop.close()

"""Recording and live streaming, and the shared encoders behind them and the room.

:class:`MediaService` owns the camera's shared encoder (one encode per codec in use: H.264
for recordings, RTMP and H.264 rooms, VP8 for VP8 rooms), the microphone tee and the one
AAC encoder. The camera is open only while something uses the video: the room's track
(:meth:`video_track`), a recording or the RTMP push; the AAC encoder runs only while a
recording or the push does. It works with or without a room.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drivers.audio.base import MicSource
from drivers.base import Emit, null_emit
from drivers.camera.base import VideoSource
from services.media.audio import MicBranch, MicTee
from services.media.audio_encoder import SharedAudioEncoder
from services.media.encoder import SharedVideoEncoder
from services.media.meter import MicMeter
from services.media.orient import OrientationControl, OrientedCamera
from services.media.recorder import DiskFull, Recorder
from services.media.rtmp import RtmpStreamer, redact_url

if TYPE_CHECKING:
    from services.media.settings import MediaSettings
    from services.media.track import EncodedVideoTrack

log = logging.getLogger(__name__)


class MediaService:
    """Implements :class:`device.actions.MediaControl`; also feeds the room's video."""

    def __init__(self, camera_factory: Callable[[], VideoSource],
                 mic_factory: Callable[[], MicSource] | None, *,
                 record_dir: Path, record_format: str = "mkv", segment_seconds: float = 300,
                 max_total_mb: int = 2048, min_free_mb: int = 200,
                 bitrate_kbps: int = 1000, gop_seconds: float = 2.0, encoder: str = "auto",
                 audio_bitrate_kbps: int = 96, stream_bitrate_kbps: int | None = None,
                 default_url: Callable[[], str | None] = lambda: None,
                 label: Callable[[], str] = lambda: "edgeroom", emit: Emit = null_emit) -> None:
        self._emit = emit
        self._default_url = default_url
        self._base_kbps = bitrate_kbps
        self.stream_bitrate_kbps = stream_bitrate_kbps
        self.video = SharedVideoEncoder(camera_factory, bitrate_kbps=bitrate_kbps,
                                        gop_seconds=gop_seconds, encoder=encoder, emit=emit)
        self.meter = MicMeter(emit)
        self.mic: MicTee | None = (MicTee(mic_factory, emit=self._on_mic_event)
                                   if mic_factory is not None else None)
        if self.mic is not None:
            self.mic.add_level_listener(self.meter.on_level)  # the page's live meter
        self.audio: SharedAudioEncoder | None = None
        if self.mic is not None:
            self.audio = SharedAudioEncoder(self.mic.branch("outputs", maxsize=50),
                                            bitrate_kbps=audio_bitrate_kbps)
        self.recorder = Recorder(self.video, self.audio, directory=record_dir, fmt=record_format,
                                 segment_seconds=segment_seconds, max_total_mb=max_total_mb,
                                 min_free_mb=min_free_mb, label=label, emit=self._on_event)
        self.streamer = RtmpStreamer(self.video, self.audio, emit=emit)
        self._room_tracks: list[EncodedVideoTrack] = []
        self._room_mic: MicBranch | None = None
        #: camera mirror and rotation (None: frames as the camera gives them)
        self.orientation: OrientationControl | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._settings: Callable[[], MediaSettings] | None = None
        self._record_dir: Callable[[], Path] | None = None

    @classmethod
    def from_settings(cls, settings: Callable[[], MediaSettings], state_dir: Path, *,
                      sim: bool, emit: Emit = null_emit,
                      orientation: OrientationControl | None = None) -> MediaService:
        """Build it from the appliance's settings; ``settings()`` is asked again whenever a
        camera or mic opens and a recording or stream starts, so saved changes apply then.
        With ``orientation``, every camera's frames are mirrored and rotated as it says."""
        from drivers.audio import open_mic
        from drivers.camera import open_camera

        def camera() -> VideoSource:
            opened = open_camera(settings().camera, sim=sim, emit=emit)
            if orientation is None:
                return opened
            # (width and height are read-only properties there: a VideoSource all the same)
            return cast(VideoSource, OrientedCamera(opened, orientation))

        def record_dir() -> Path:
            path = Path(settings().record_directory).expanduser()
            return path if path.is_absolute() else state_dir / path

        now = settings()
        media = cls(
            camera,
            lambda: open_mic(settings().audio, state_dir, sim=sim, emit=emit),
            record_dir=record_dir(), bitrate_kbps=now.bitrate_kbps,
            gop_seconds=now.gop_seconds, encoder=now.encoder,
            audio_bitrate_kbps=now.audio_bitrate_kbps,
            stream_bitrate_kbps=now.stream_bitrate_kbps,
            default_url=lambda: settings().rtmp_url,
            label=lambda: settings().label, emit=emit)
        media._settings = settings
        media.orientation = orientation
        media._record_dir = record_dir
        media.apply_config()
        return media

    def apply_config(self) -> None:
        """Take the current record and video settings (from :meth:`from_settings`'s
        source)."""
        if self._settings is None:
            return
        now = self._settings()
        rec = self.recorder
        if not rec.recording:
            rec.directory = self._record_dir() if self._record_dir else rec.directory
            rec.fmt = now.record_format
            rec.segment_seconds = now.segment_seconds
        rec.max_total_mb = now.max_total_mb
        rec.min_free_mb = now.min_free_mb
        video = self.video
        self.stream_bitrate_kbps = now.stream_bitrate_kbps
        self.streamer.ca_file = now.stream_ca_file
        if self._base_kbps != now.bitrate_kbps:
            self._base_kbps = now.bitrate_kbps
            self._set_video_cap()
        video.gop_seconds = now.gop_seconds
        video.encoder_choice = now.encoder

    def __repr__(self) -> str:
        return (f"<MediaService video={self.video!r} recording={self.recorder.recording} "
                f"stream={self.streamer.state}>")

    # -- the room's side --------------------------------------------------------------

    def video_track(self, name: str = "room", codec: str | None = None) -> EncodedVideoTrack:
        """A new video track fed by the shared encoder (the room's track factory; the
        page's camera preview too, as ``name="preview"``); the camera runs while it lives.
        Its codec is set when known (:meth:`EncodedVideoTrack.set_codec`)."""
        from services.media.track import EncodedVideoTrack  # aiortc: loaded when first used

        track = EncodedVideoTrack(self.video, on_stop=self._room_track_stopped, name=name,
                                  codec=codec)
        self._room_tracks.append(track)
        task = asyncio.get_running_loop().create_task(self._update(), name="media:room-video")
        _background.add(task)
        task.add_done_callback(_background.discard)
        return track

    def mic_for_room(self) -> MicSource:
        """The room's microphone: a branch of the shared mic (the same one for every
        session the room builds; it can be started and stopped again)."""
        if self.mic is None:
            raise RuntimeError("no microphone configured")
        if self._room_mic is None:
            self._room_mic = self.mic.branch("room")
        return self._room_mic

    async def _room_track_stopped(self, track: EncodedVideoTrack) -> None:
        if track in self._room_tracks:
            self._room_tracks.remove(track)
        await self._update()

    # -- MediaControl -----------------------------------------------------------------

    async def start_recording(self) -> dict[str, Any]:
        self.apply_config()
        await self._ensure_encoders(audio=True)
        try:
            status = await self.recorder.start()
        except DiskFull as exc:
            log.warning("recording refused: %s", exc)
            self._emit("recording-stopped", {"reason": "disk-full", "files": []})
            await self._update()
            return {**self.recorder.status(), "error": str(exc)}
        return status

    async def stop_recording(self) -> dict[str, Any]:
        status = await self.recorder.stop()
        await self._update()
        return status

    async def start_stream(self, url: str | None = None) -> dict[str, Any]:
        url = url or self._default_url()
        if not url:
            raise ValueError("no RTMP URL: set stream.rtmp_url or give one")
        self.apply_config()
        await self._ensure_encoders(audio=True)
        log.info("streaming to %s", redact_url(url))
        status = await self.streamer.start(url)
        self._set_video_cap()
        return status

    async def stop_stream(self) -> dict[str, Any]:
        status = await self.streamer.stop()
        self._set_video_cap()
        await self._update()
        return status

    def _set_video_cap(self) -> None:
        """The encoders' bitrate: ``video.bitrate_kbps``, and for H.264 (what RTMP takes)
        ``stream.video_bitrate_kbps`` while streaming (the room's bandwidth estimate can
        only lower either)."""
        h264 = self._base_kbps
        if self.streamer.streaming and self.stream_bitrate_kbps:
            h264 = self.stream_bitrate_kbps
        self.video.set_max_bitrate(h264, ("h264",))
        self.video.set_max_bitrate(self._base_kbps, ("vp8",))

    def status(self) -> dict[str, Any]:
        return {
            "recording": self.recorder.status(),
            "stream": self.streamer.status(),
            "encoder": {**self.video.stats, "running": self.video.is_running,
                        "subscriber_names": self.video.subscriber_names},
            "audio_encoder": self.audio.stats if self.audio is not None else None,
            "mic": {"open": self.mic is not None and self.mic.is_open,
                    "users": self.mic.users if self.mic is not None else [],
                    "level_dbfs": self.mic_level(),
                    "device": self.mic.source_stats if self.mic is not None else {}},
        }

    def mic_level(self) -> float | None:
        """The mic's level in dBFS, rounded; None while closed or silent."""
        if self.mic is None or not math.isfinite(self.mic.level_dbfs):
            return None
        return round(self.mic.level_dbfs, 1)

    def _on_mic_event(self, name: str, data: dict[str, Any]) -> None:
        self._emit(name, data)
        if name == "mic-open" and not data.get("open"):
            self.meter.closed()

    # -- who needs what ---------------------------------------------------------------

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        self._emit(name, data)
        if name == "recording-stopped":
            # stopped by itself (disk full): release the camera if nobody else uses it
            task = asyncio.get_running_loop().create_task(self._update(),
                                                          name="media:recording-stopped")
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _ensure_encoders(self, audio: bool) -> None:
        async with self._lock:
            if self._closed:
                raise RuntimeError("media service is closed")
            await self.video.start()
            if audio and self.audio is not None:
                await self.audio.start()

    async def _update(self) -> None:
        """Start what is needed, stop what is not."""
        async with self._lock:
            outputs = self.recorder.recording or self.streamer.streaming
            wants_video = outputs or bool(self._room_tracks)
            if self._closed:
                wants_video = outputs = False
            if wants_video and not self.video.is_running:
                await self.video.start()
            elif not wants_video and self.video.is_running:
                await self.video.stop()
            if self.audio is not None and not outputs and self.audio.is_running:
                await self.audio.stop()

    async def run(self) -> None:
        """The subsystem: keeps the outputs until cancelled, then stops everything."""
        self._closed = False
        self.apply_config()
        failures = 0
        try:
            while True:
                # (re)starts the encoder when something wants video and it is not running:
                # after a restart of this subsystem, or when the camera went away
                try:
                    await self._update()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("camera or encoder could not start: %s", exc)
                        self._emit("media-error", {"error": str(exc)})
                await asyncio.sleep(min(1.0 * 2 ** failures, 30.0) if failures else 1.0)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop recording, streaming and the encoders (idempotent). The mic stays open
        while the room still reads its branch."""
        self._closed = True
        await self.recorder.stop("shutdown")
        await self.streamer.stop("shutdown")
        # the room's tracks stay: they resume when the subsystem runs again (the room
        # ends them itself when it leaves)
        async with self._lock:
            await self.video.stop()
            if self.audio is not None:
                await self.audio.stop()


_background: set[asyncio.Task[None]] = set()

"""The camera's shared encoder: the camera is read once, each frame is encoded once per
codec that something takes, and the packets go to every output of that codec.

A camera that can be read from a thread (the sim camera) is read, and its frames encoded
and sent, in one thread of its own (:mod:`services.media.pump`); any other camera is read
on the event loop. Either way a slow encoder makes the camera skip frames (latest-frame
semantics), never queue them. Each codec's encode (:class:`CodecEncode`: H.264
for recordings, RTMP and H.264 rooms; VP8 for VP8 rooms) runs in its own worker thread;
when two run, they encode the same frame side by side. A codec is encoded only while it
has subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from drivers.base import Emit, null_emit
from drivers.camera.base import CapturedFrame, VideoSource
from drivers.lazy import import_off_loop
from services.media.budget import VideoBudget
from services.media.codec_options import x264_options
from services.media.codecs import (
    H264,
    HARDWARE_ENCODER,
    MIN_BITRATE_KBPS,
    SOFTWARE_ENCODER,
    VIDEO_CODECS,
    CodecEncode,
    EncoderError,
)
from services.media.packets import EncodedPacket, PacketSubscription
from services.media.pump import (
    admitted_encodes,
    copy_frame,
    publish_done,
    reads_in_thread,
    run_frame_pump,
)

if TYPE_CHECKING:
    import av  # imported where a frame or codec is used: an idle box never loads PyAV

log = logging.getLogger(__name__)

__all__ = ["HARDWARE_ENCODER", "MIN_BITRATE_KBPS", "SOFTWARE_ENCODER", "EncoderError",
           "SharedVideoEncoder", "x264_options"]


class SharedVideoEncoder:
    """Reads one camera once and encodes it once per codec in use.

    ``camera_factory`` opens the camera when the encoder starts; :meth:`stop` closes it
    (the camera is on only while something consumes the video). ``encoder`` is the H.264
    implementation: ``"auto"`` (hardware when it opens, else libx264), ``"libx264"`` or
    ``"h264_v4l2m2m"``. Methods that take ``codec`` default to H.264 (recordings and
    RTMP); the room's track passes the codec the room negotiated.
    """

    #: How many encoders were ever created, and how many run now (the "encode once" check).
    created: ClassVar[int] = 0
    running: ClassVar[int] = 0

    def __init__(self, camera_factory: Callable[[], VideoSource], *,
                 bitrate_kbps: int = 1000, gop_seconds: float = 2.0, encoder: str = "auto",
                 preset: str = "ultrafast", emit: Emit = null_emit,
                 name: str = "camera") -> None:
        if encoder not in ("auto", SOFTWARE_ENCODER, HARDWARE_ENCODER):
            raise ValueError(f"video.encoder must be auto, libx264 or h264_v4l2m2m, "
                             f"got {encoder!r}")
        SharedVideoEncoder.created += 1
        self.name = name
        self._camera_factory = camera_factory
        self._emit = emit
        self._origin = time.monotonic()
        self._encodes = {codec: CodecEncode(codec, name, bitrate_kbps=bitrate_kbps,
                                            gop_seconds=gop_seconds, encoder=encoder,
                                            preset=preset)
                         for codec in VIDEO_CODECS}
        self._task: asyncio.Task[None] | None = None
        self._camera: VideoSource | None = None
        self._last_index = -1
        # counters (read by tests, /metrics and the bench)
        self.frames_in = 0
        #: frames read while no codec had a subscriber (not encoded: nobody takes them)
        self.frames_unused = 0
        self.duplicate_frames = 0
        #: the cameras' own counters, summed over every run (``delivered`` = frames read)
        self.camera_totals: dict[str, int] = {}
        self._frame_observers: list[Callable[[av.VideoFrame | None], None]] = []
        #: how much video the CPU affords while the audio keeps its deadline
        self.budget = VideoBudget(name=name)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        codecs = ",".join(self.active_codecs) or "-"
        return (f"<SharedVideoEncoder {self.name} {codecs} {state} "
                f"frames={self.frames_in} subscribers={self.subscribers}>")

    def encode_of(self, codec: str = H264) -> CodecEncode:
        """The encode of ``codec`` (``"h264"`` or ``"vp8"``)."""
        try:
            return self._encodes[codec]
        except KeyError:
            raise ValueError(f"video codec must be one of {', '.join(VIDEO_CODECS)}, "
                             f"got {codec!r}") from None

    @property
    def codec_encodes(self) -> list[CodecEncode]:
        return list(self._encodes.values())

    @property
    def origin(self) -> float:
        """The monotonic time every encode's ``pts`` counts from."""
        return self._origin

    @property
    def active_codecs(self) -> list[str]:
        """The codecs something takes now (each is encoded once per frame)."""
        return [codec for codec, enc in self._encodes.items() if enc.active]

    # -- consumers --------------------------------------------------------------------

    def add_frame_observer(self, observer: Callable[[av.VideoFrame | None], None]) -> None:
        """Call ``observer(frame)`` with every captured frame (on the loop or the camera's
        frame thread: keep it cheap and thread-safe, e.g. keep a reference for a preview)
        and ``observer(None)`` when the camera stops."""
        self._frame_observers.append(observer)

    def notify_observers(self, frame: av.VideoFrame | None) -> None:
        for observer in self._frame_observers:
            try:
                observer(frame)
            except Exception:
                log.exception("%s frame observer failed", self.name)

    def subscribe(self, name: str, maxsize: int = 30, codec: str = H264) -> PacketSubscription:
        """A new video-only subscription to ``codec``; it starts at a keyframe, requested
        now."""
        enc = self.encode_of(codec)
        sub = PacketSubscription(name, maxsize, enc.request_keyframe, kinds=("video",))
        self.attach(sub, codec)
        return sub

    def attach(self, sub: PacketSubscription, codec: str = H264) -> None:
        """Offer ``codec``'s packets to ``sub`` (made elsewhere, e.g. shared with audio)."""
        enc = self.encode_of(codec)
        enc.fanout.add(sub)
        if sub.waiting_keyframe:
            enc.request_keyframe(f"{sub.name} subscribed")

    def detach(self, sub: PacketSubscription) -> None:
        for enc in self._encodes.values():
            enc.fanout.remove(sub)

    @property
    def subscribers(self) -> int:
        return sum(len(enc.fanout) for enc in self._encodes.values())

    @property
    def subscriber_names(self) -> list[str]:
        """Who takes the packets (e.g. ``["preview", "room"]``), sorted."""
        return sorted(n for enc in self._encodes.values() for n in enc.fanout.names)

    def request_keyframe(self, reason: str = "", codec: str = H264) -> None:
        """Make ``codec``'s next frame a keyframe (requests close together are merged)."""
        self.encode_of(codec).request_keyframe(reason)

    # -- bitrate ----------------------------------------------------------------------

    @property
    def bitrate_kbps(self) -> int:
        """H.264's target bitrate (see :meth:`encode_of` for the others)."""
        return self._encodes[H264].bitrate_kbps

    def set_bitrate(self, kbps: int, codec: str = H264) -> int:
        """Set ``codec``'s target bitrate (capped by its configured one); returns what was
        applied."""
        return self.encode_of(codec).set_bitrate(kbps)

    @property
    def max_bitrate_kbps(self) -> int:
        return self._encodes[H264].max_bitrate_kbps

    @max_bitrate_kbps.setter
    def max_bitrate_kbps(self, kbps: int) -> None:
        self.set_max_bitrate(kbps)

    def set_max_bitrate(self, kbps: int, codecs: tuple[str, ...] = VIDEO_CODECS) -> None:
        """The configured ceiling of ``codecs``; their target follows it."""
        for codec in codecs:
            enc = self.encode_of(codec)
            if enc.max_bitrate_kbps != kbps:
                enc.max_bitrate_kbps = kbps
                enc.set_bitrate(kbps)

    @property
    def gop_seconds(self) -> float:
        return self._encodes[H264].gop_seconds

    @gop_seconds.setter
    def gop_seconds(self, value: float) -> None:
        for enc in self._encodes.values():
            enc.gop_seconds = value

    @property
    def encoder_choice(self) -> str:
        return self._encodes[H264].encoder_choice

    @encoder_choice.setter
    def encoder_choice(self, value: str) -> None:
        self._encodes[H264].encoder_choice = value

    # -- what H.264 did (recordings, RTMP and the tests read these) --------------------

    @property
    def codec_name(self) -> str | None:
        """The H.264 implementation in use (``libx264``, ``h264_v4l2m2m``), once opened."""
        return self._encodes[H264].implementation

    @property
    def frames_encoded(self) -> int:
        return self._encodes[H264].frames_encoded

    @property
    def packets_out(self) -> int:
        return self._encodes[H264].packets_out

    @property
    def keyframes(self) -> int:
        return self._encodes[H264].keyframes

    @property
    def keyframe_requests(self) -> int:
        return self._encodes[H264].keyframe_requests

    @property
    def codec_opens(self) -> int:
        return self._encodes[H264].codec_opens

    # -- running ----------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def frame_seconds(self) -> float:
        """How long one frame lasts at the camera's rate (0 when not running)."""
        camera = self._camera
        return 1.0 / camera.fps if camera is not None and camera.fps else 0.0

    async def start(self) -> None:
        """Open the camera and start encoding (idempotent)."""
        if self.is_running:
            return
        if self._task is not None:
            await self.stop()  # it ended by itself (camera gone): clean up first
        await import_off_loop("av", "numpy")  # loaded on first use, off the loop
        camera = self._camera_factory()
        await camera.start()
        self._last_index = -1
        self._camera = camera
        SharedVideoEncoder.running += 1
        self._task = asyncio.create_task(self._run(camera), name=f"encoder:{self.name}")
        log.info("%s encoder: stopped -> running (%dx%d@%d)", self.name,
                 camera.width, camera.height, camera.fps)

    @property
    def camera_factory(self) -> Callable[[], VideoSource]:
        """What opens the camera (at the next start)."""
        return self._camera_factory

    @camera_factory.setter
    def camera_factory(self, factory: Callable[[], VideoSource]) -> None:
        self._camera_factory = factory

    async def switch_camera(self, factory: Callable[[], VideoSource]) -> bool:
        """Take frames from another camera; a running encoder reopens with it at once
        (its subscribers stay). True when it was running."""
        self._camera_factory = factory
        if not self.is_running:
            return False
        await self.stop()
        await self.start()  # every encode reopens, so each starts with a keyframe
        return True

    async def stop(self) -> None:
        """Stop encoding and close the camera (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        SharedVideoEncoder.running -= 1
        if self._camera is not None:
            await self._camera.stop()
            for key, value in self._camera.stats.items():
                self.camera_totals[key] = self.camera_totals.get(key, 0) + value
            self._camera = None
            self.notify_observers(None)
        for enc in self._encodes.values():
            executor = enc.close()
            if executor is not None:
                await asyncio.to_thread(executor.shutdown, wait=True)
        log.info("%s encoder: running -> stopped (%s)", self.name, self.stats)

    async def _run(self, camera: VideoSource) -> None:
        try:
            if reads_in_thread(camera):
                await run_frame_pump(self, cast(Any, camera))
                return
            while True:
                await self._skip_unadmitted(camera.fps or 30)
                try:
                    captured = await camera.read()
                except EOFError:
                    log.info("%s encoder: camera stopped", self.name)
                    return
                self.frames_in += 1
                self.notify_observers(captured.frame)
                await self._encode_frame(captured, camera.fps or 30)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s encoder failed", self.name)
            self._emit("encoder-error", {"camera": self.name, "error": str(exc)})
            raise

    async def _skip_unadmitted(self, fps: int) -> None:
        """While the budget holds the encode below the camera's rate, the frames it
        would skip are not read at all (no conversion, no hand-over on the loop): wait
        for the next one it admits."""
        if not any(enc.active for enc in self._encodes.values()):
            return
        due = self.budget.next_frame_at(fps)
        if due is not None and due > time.monotonic():
            await asyncio.sleep(min(1.0, due - time.monotonic()))

    async def _encode_frame(self, captured: CapturedFrame, fps: int) -> None:
        """Encode one frame with every codec in use, side by side, and publish."""
        active = admitted_encodes(self, captured, fps)
        if not active:
            return
        step = self.budget.step
        loop = asyncio.get_running_loop()
        frame = captured.frame
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        jobs: list[tuple[CodecEncode, asyncio.Future[list[EncodedPacket]]]] = []
        for i, enc in enumerate(active):
            # each encode sets its own pts and picture type: give each its own frame
            own = frame if i == 0 else copy_frame(frame)
            jobs.append((enc, loop.run_in_executor(enc.executor(), enc.encode, own, captured,
                                                   self._origin, fps, step.scale)))
        futures = [job for _, job in jobs]
        try:
            await asyncio.shield(asyncio.gather(*futures, return_exceptions=True))
        except asyncio.CancelledError:
            # a frame read is a frame encoded and sent: let this one finish (milliseconds)
            await asyncio.wait(futures)
            publish_done(jobs)
            raise
        publish_done(jobs, raise_errors=True)

    def count_index(self, index: int) -> None:
        if index <= self._last_index:
            self.duplicate_frames += 1
        self._last_index = index

    @property
    def stats(self) -> dict[str, Any]:
        encodes = {codec: enc.stats for codec, enc in self._encodes.items()
                   if enc.active or enc.codec_opens}
        return {
            "codecs": self.active_codecs,
            "frames_in": self.frames_in,
            "frames_unused": self.frames_unused,
            "duplicate_frames": self.duplicate_frames,
            "subscribers": self.subscribers,
            "encode_cpu_seconds": round(sum(e.encode_cpu_seconds
                                            for e in self._encodes.values()), 3),
            "budget": self.budget.stats,
            "encodes": encodes,
        }


"""One H.264 encoder per camera, whose packets go to every output.

The camera is read on the event loop (latest-frame semantics: a slow encoder makes the
camera skip frames, never queue them); each frame is encoded once, in a worker thread,
and the packets are offered to every :class:`PacketSubscription` attached.

Settings are chosen for live use and for WebRTC: constrained baseline (no B-frames, so
``pts == dts`` and nothing waits for reordering), zero-latency tuning, a bounded GOP,
SPS/PPS before every keyframe (so any receiver can start at any keyframe), and a target
bitrate that may change at run time (the room's bandwidth estimate) without a restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, ClassVar

import av

from drivers.base import Emit, null_emit
from drivers.camera.base import TIME_BASE, CapturedFrame, VideoSource
from drivers.errors import EdgeroomError
from services.media.packets import EncodedPacket, PacketFanout, PacketSubscription

log = logging.getLogger(__name__)

HARDWARE_ENCODER = "h264_v4l2m2m"
SOFTWARE_ENCODER = "libx264"
#: Forced keyframes closer together than this (capture time) are merged into one.
MIN_KEYFRAME_INTERVAL = 0.25
MIN_BITRATE_KBPS = 50
#: A hardware encoder takes a new bitrate only when reopened: at most this often.
REOPEN_INTERVAL = 5.0


class EncoderError(EdgeroomError, RuntimeError):
    """No H.264 encoder could be opened."""

    code = "ENCODER_ERROR"  # the action error it becomes (services/actions.py)


def x264_options(gop: int, max_kbps: int, preset: str = "ultrafast") -> dict[str, str]:
    """libx264 options for live WebRTC-compatible H.264 (constrained baseline, level 3.1)."""
    return {
        "preset": preset,
        "tune": "zerolatency",
        "profile": "baseline",  # x264 writes it as constrained baseline (42c0xx)
        "level": "3.1",
        "forced-idr": "1",
        # VBV caps bursts; it also lets x264 change its bitrate while running
        "maxrate": str(max_kbps * 1000),
        "bufsize": str(max_kbps * 1000 // 2),
        "x264-params": f"keyint={gop}:repeat-headers=1",
    }


class SharedVideoEncoder:
    """Encodes one camera once and fans the packets out.

    ``camera_factory`` opens the camera when the encoder starts; :meth:`stop` closes it
    (the camera is on only while something consumes the video). ``encoder`` is
    ``"auto"`` (hardware when it opens, else libx264), ``"libx264"`` or ``"h264_v4l2m2m"``.
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
        self.max_bitrate_kbps = bitrate_kbps
        self.gop_seconds = gop_seconds
        self.encoder_choice = encoder
        self.preset = preset
        self._camera_factory = camera_factory
        self._emit = emit
        self._fanout = PacketFanout()
        self._origin = time.monotonic()
        self._target_kbps = bitrate_kbps
        self._codec: Any = None
        self._codec_name: str | None = None
        self._opened_max = bitrate_kbps
        self._opened_at = 0.0
        self._hardware_failed = False
        self._want_keyframe = False
        self._last_forced: float = -1e9
        self._task: asyncio.Task[None] | None = None
        self._camera: VideoSource | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._last_index = -1
        # counters (read by tests, /metrics and the bench)
        self.frames_in = 0
        self.frames_encoded = 0
        self.duplicate_frames = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.codec_opens = 0
        self.encode_cpu_seconds = 0.0
        #: the cameras' own counters, summed over every run (``delivered`` = frames read)
        self.camera_totals: dict[str, int] = {}
        self._frame_observers: list[Callable[[av.VideoFrame | None], None]] = []

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return (f"<SharedVideoEncoder {self.name} {self._codec_name or '-'} {state} "
                f"{self._target_kbps} kbps frames={self.frames_encoded} "
                f"subscribers={len(self._fanout)}>")

    # -- consumers --------------------------------------------------------------------

    def add_frame_observer(self, observer: Callable[[av.VideoFrame | None], None]) -> None:
        """Call ``observer(frame)`` with every captured frame (on the loop; keep it cheap,
        e.g. keep a reference for a preview) and ``observer(None)`` when the camera stops."""
        self._frame_observers.append(observer)

    def _notify_observers(self, frame: av.VideoFrame | None) -> None:
        for observer in self._frame_observers:
            try:
                observer(frame)
            except Exception:
                log.exception("%s frame observer failed", self.name)

    def subscribe(self, name: str, maxsize: int = 30) -> PacketSubscription:
        """A new video-only subscription; it starts at a keyframe, requested now."""
        sub = PacketSubscription(name, maxsize, self.request_keyframe, kinds=("video",))
        self.attach(sub)
        return sub

    def attach(self, sub: PacketSubscription) -> None:
        """Offer packets to ``sub`` (made elsewhere, e.g. shared with audio)."""
        self._fanout.add(sub)
        if sub.waiting_keyframe:
            self.request_keyframe(f"{sub.name} subscribed")

    def detach(self, sub: PacketSubscription) -> None:
        self._fanout.remove(sub)

    @property
    def subscribers(self) -> int:
        return len(self._fanout)

    @property
    def subscriber_names(self) -> list[str]:
        """Who takes the packets (e.g. ``["preview", "room"]``), sorted."""
        return sorted(self._fanout.names)

    def request_keyframe(self, reason: str = "") -> None:
        """Make the next frame a keyframe (requests close together are merged)."""
        self.keyframe_requests += 1
        if not self._want_keyframe:
            log.debug("%s: keyframe requested (%s)", self.name, reason)
        self._want_keyframe = True

    # -- bitrate ----------------------------------------------------------------------

    @property
    def bitrate_kbps(self) -> int:
        return self._target_kbps

    def set_bitrate(self, kbps: int) -> int:
        """Set the target bitrate (capped by the configured one); returns what was applied."""
        value = max(MIN_BITRATE_KBPS, min(int(kbps), self.max_bitrate_kbps))
        if value != self._target_kbps:
            log.info("%s: bitrate %d -> %d kbps", self.name, self._target_kbps, value)
            self._target_kbps = value
        return value

    # -- running ----------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def frame_seconds(self) -> float:
        """How long one frame lasts at the camera's rate (0 when not running)."""
        camera = self._camera
        return 1.0 / camera.fps if camera is not None and camera.fps else 0.0

    @property
    def codec_name(self) -> str | None:
        return self._codec_name

    async def start(self) -> None:
        """Open the camera and start encoding (idempotent)."""
        if self.is_running:
            return
        if self._task is not None:
            await self.stop()  # it ended by itself (camera gone): clean up first
        camera = self._camera_factory()
        await camera.start()
        self._last_index = -1
        self._camera = camera
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"h264-{self.name}")
        SharedVideoEncoder.running += 1
        self._task = asyncio.create_task(self._run(camera), name=f"encoder:{self.name}")
        log.info("%s encoder: stopped -> running (%dx%d@%d)", self.name,
                 camera.width, camera.height, camera.fps)

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
            self._notify_observers(None)
        executor, self._executor = self._executor, None
        if executor is not None:  # waits for the encode in progress: off the event loop
            await asyncio.to_thread(executor.shutdown, True)
        self._codec = None
        log.info("%s encoder: running -> stopped (%s)", self.name, self.stats)

    async def _run(self, camera: VideoSource) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        try:
            while True:
                try:
                    captured = await camera.read()
                except EOFError:
                    log.info("%s encoder: camera stopped", self.name)
                    return
                self.frames_in += 1
                self._notify_observers(captured.frame)
                job = loop.run_in_executor(executor, self._encode, captured)
                try:
                    packets = await asyncio.shield(job)
                except asyncio.CancelledError:
                    # a frame read is a frame encoded and sent: let this one finish
                    # (milliseconds)
                    await asyncio.wait([job])
                    if not job.cancelled() and job.exception() is None:
                        self._publish(job.result())
                    raise
                self._publish(packets)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s encoder failed", self.name)
            self._emit("encoder-error", {"camera": self.name, "error": str(exc)})
            raise

    def _publish(self, packets: list[EncodedPacket]) -> None:
        for packet in packets:
            self.packets_out += 1
            self.bytes_out += len(packet.data)
            self._fanout.publish(packet)

    # -- the worker thread ------------------------------------------------------------

    def _open(self, width: int, height: int, fps: int) -> None:
        names: list[str]
        if self.encoder_choice == "auto":
            names = [SOFTWARE_ENCODER] if self._hardware_failed else [HARDWARE_ENCODER,
                                                                      SOFTWARE_ENCODER]
        else:
            names = [self.encoder_choice]
            if self.encoder_choice == HARDWARE_ENCODER:
                names.append(SOFTWARE_ENCODER)
        errors = []
        for name in names:
            try:
                self._codec = self._open_codec(name, width, height, fps)
            except (av.FFmpegError, ValueError, OSError) as exc:
                errors.append(f"{name}: {exc}")
                if name == HARDWARE_ENCODER:
                    self._hardware_failed = True
                    level = logging.INFO if self.encoder_choice == "auto" else logging.WARNING
                    log.log(level, "%s: hardware encoder unavailable (%s), using libx264",
                            self.name, exc)
                continue
            self._codec_name = name
            self.codec_opens += 1
            log.info("%s: %s opened %dx%d@%d %d kbps gop %d", self.name, name, width, height,
                     fps, self._target_kbps, self._gop(fps))
            return
        raise EncoderError("no H.264 encoder could be opened: " + "; ".join(errors))

    def _gop(self, fps: int) -> int:
        return max(1, round(self.gop_seconds * fps))

    def _open_codec(self, name: str, width: int, height: int, fps: int) -> Any:
        codec: Any = av.CodecContext.create(name, "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = "yuv420p"
        codec.time_base = TIME_BASE
        codec.framerate = Fraction(fps, 1)
        codec.bit_rate = self._target_kbps * 1000
        codec.gop_size = self._gop(fps)
        if name == SOFTWARE_ENCODER:
            codec.options = x264_options(self._gop(fps), self.max_bitrate_kbps, self.preset)
            self._opened_max = self.max_bitrate_kbps
        else:
            codec.options = {"num_capture_buffers": "8"}
            try:
                codec.profile = "Constrained Baseline"
            except (ValueError, AttributeError) as exc:
                log.debug("%s: cannot set the profile of %s: %s", self.name, name, exc)
        codec.open()
        self._opened_at = time.monotonic()
        return codec

    def _worth_reopening(self, current_bps: int, now: float) -> bool:
        """Reopen for a new bitrate only for a real change, and not more than every
        :data:`REOPEN_INTERVAL` (each reopen costs a keyframe)."""
        change = abs(self._target_kbps * 1000 - current_bps) / max(current_bps, 1)
        if self._codec_name == SOFTWARE_ENCODER:
            return True  # raised above its VBV ceiling: only a reopen applies it
        if change < 0.2 or now - self._opened_at < REOPEN_INTERVAL:
            return False
        return True

    def _encode(self, captured: CapturedFrame) -> list[EncodedPacket]:
        """Encode one frame (worker thread); returns the packets it produced."""
        cpu0 = time.thread_time()
        frame = captured.frame
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        codec = self._codec
        if codec is not None and (codec.width != frame.width or codec.height != frame.height):
            log.info("%s: frame size %dx%d -> %dx%d, reopening the encoder", self.name,
                     codec.width, codec.height, frame.width, frame.height)
            codec = None
        if codec is None:
            camera = self._camera
            fps = camera.fps if camera is not None else 30
            self._open(frame.width, frame.height, fps)
            codec = self._codec
        elif codec.bit_rate != self._target_kbps * 1000:
            if self._codec_name == SOFTWARE_ENCODER and self._target_kbps <= self._opened_max:
                codec.bit_rate = self._target_kbps * 1000  # x264 reconfigures at next frame
            elif self._worth_reopening(codec.bit_rate, captured.captured_at):
                # above the VBV ceiling it was opened with, or a hardware encoder (which
                # takes a bitrate only at open): open it again (it starts on a keyframe)
                self._codec = None
                return self._encode(captured)
        frame.pts = round((captured.captured_at - self._origin) * 90_000)
        frame.time_base = TIME_BASE
        force = self._want_keyframe and (
            captured.captured_at - self._last_forced >= MIN_KEYFRAME_INTERVAL)
        if force:
            self._want_keyframe = False
            self._last_forced = captured.captured_at
            frame.pict_type = av.video.frame.PictureType.I
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        out = []
        for packet in codec.encode(frame):
            keyframe = bool(packet.is_keyframe)
            if keyframe:
                self.keyframes += 1
            out.append(EncodedPacket("video", bytes(packet), int(packet.pts), TIME_BASE,
                                     keyframe, captured.captured_at, captured.index))
        if captured.index <= self._last_index:
            self.duplicate_frames += 1
        self._last_index = captured.index
        self.frames_encoded += 1
        self.encode_cpu_seconds += time.thread_time() - cpu0
        return out

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "codec": self._codec_name,
            "bitrate_kbps": self._target_kbps,
            "frames_in": self.frames_in,
            "frames_encoded": self.frames_encoded,
            "duplicate_frames": self.duplicate_frames,
            "keyframes": self.keyframes,
            "keyframe_requests": self.keyframe_requests,
            "packets": self.packets_out,
            "bytes": self.bytes_out,
            "subscribers": len(self._fanout),
            "codec_opens": self.codec_opens,
            "encode_cpu_seconds": round(self.encode_cpu_seconds, 3),
        }

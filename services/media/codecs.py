"""One codec's encode of the shared camera: its encoder context, bitrate, keyframes, outputs.

:class:`~services.media.encoder.SharedVideoEncoder` reads the camera once and hands each
frame to one :class:`CodecEncode` per codec something subscribes to: H.264 (the room when
it chose H.264, recordings, RTMP) and VP8 (the room when it chose VP8). Each encode runs
in its own worker thread, so two codecs encode the same frame side by side.

H.264 settings are for live use and for WebRTC: constrained baseline (no B-frames, so
``pts == dts``), zero-latency tuning, a bounded GOP, SPS/PPS before every keyframe, and a
bitrate that changes at run time without a restart (libx264). VP8 goes through libvpx in
real-time mode: ``deadline=realtime``, error resilient, no look-ahead (``lag-in-frames=0``,
no alt-ref frames, so every packet is one shown frame), CBR at the target bitrate, and a
fixed speed chosen as libwebrtc chooses it (:mod:`services.media.codec_options`); libvpx
takes a new bitrate only when reopened.
Each time libvpx opens it zeroes a token buffer sized for the worst frame (7.4 MB at
640x480); its pages are given back to the system right after
(:mod:`drivers.common.zero_pages`), and come back only as far as frames write them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from drivers.camera.base import TIME_BASE, CapturedFrame
from drivers.common.zero_pages import give_back_zeroed, new_ranges
from drivers.errors import EdgeroomError
from drivers.threadname import name_this_thread
from services.media.codec_options import (
    vp8_cpu_used,
    vp8_options,
    vp8_token_bytes,
    x264_options,
    x264_threads,
)
from services.media.packets import EncodedPacket, PacketFanout
from services.media.scale import FrameScaler

if TYPE_CHECKING:
    import av  # imported where a frame or codec is used: an idle box never loads PyAV

log = logging.getLogger(__name__)

H264 = "h264"
VP8 = "vp8"
#: The video codecs the box can produce (and aiortc can packetize).
VIDEO_CODECS = (H264, VP8)
HARDWARE_ENCODER = "h264_v4l2m2m"
SOFTWARE_ENCODER = "libx264"
VP8_ENCODER = "libvpx"
#: Forced keyframes closer together than this (capture time) are merged into one.
MIN_KEYFRAME_INTERVAL = 0.25
MIN_BITRATE_KBPS = 50
#: An encoder that takes a new bitrate only when reopened (hardware H.264, libvpx) is
#: reopened at most this often, and only for a change of at least :data:`REOPEN_CHANGE`.
REOPEN_INTERVAL = 5.0
REOPEN_CHANGE = 0.2


#: The encode threads' nice value: when the CPU is short, the event loop (the audio's
#: send path) and the audio threads run first and the video encode takes what is left.
ENCODER_NICE = 10


def lower_thread_priority(nice: int = ENCODER_NICE) -> None:
    """Make the calling thread nicer (Linux keeps a nice value per thread), and name it."""
    name_this_thread()
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except OSError as exc:  # not permitted by a sandbox: run at the same priority
        log.debug("cannot lower the encode thread's priority: %s", exc)


class EncoderError(EdgeroomError, RuntimeError):
    """No encoder for a codec could be opened."""

    code = "ENCODER_ERROR"  # the action error it becomes (drivers/common/actions.py)


class CodecEncode:
    """One codec's encoder context and the outputs that take its packets.

    ``encoder`` picks the implementation for H.264 (``"auto"``: hardware when it opens,
    else libx264; ``"libx264"``; ``"h264_v4l2m2m"``); VP8 always uses libvpx. Every
    method except :meth:`encode` runs on the event loop; :meth:`encode` runs in this
    encode's own worker thread (or the camera's frame thread, :mod:`services.media.pump`)
    and hands each frame's packets to the fanout's sinks there.
    """

    def __init__(self, codec: str, owner: str, *, bitrate_kbps: int, gop_seconds: float,
                 encoder: str = "auto", preset: str = "ultrafast") -> None:
        if codec not in VIDEO_CODECS:
            raise ValueError(f"video codec must be one of {', '.join(VIDEO_CODECS)}, "
                             f"got {codec!r}")
        self.codec = codec
        self.name = f"{owner}/{codec}"
        self.max_bitrate_kbps = bitrate_kbps
        self.gop_seconds = gop_seconds
        self.encoder_choice = encoder
        self.preset = preset
        self.fanout = PacketFanout()
        self._target_kbps = bitrate_kbps
        self._ctx: Any = None
        self.implementation: str | None = None
        self._opened_kbps = bitrate_kbps
        self._opened_max = bitrate_kbps
        self._opened_at = 0.0
        self._hardware_failed = False
        self._want_keyframe = False
        self._last_forced: float = -1e9
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: the budget's smaller sizes, made with one reused libswscale context
        self.scaler = FrameScaler()
        self.frames_encoded = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.codec_opens = 0
        #: bytes of libvpx's zeroed buffers given back to the system (all opens)
        self.pages_given_back = 0
        self.encode_cpu_seconds = 0.0

    def __repr__(self) -> str:
        return (f"<CodecEncode {self.codec} {self.implementation or '-'} "
                f"{self._target_kbps} kbps frames={self.frames_encoded} "
                f"subscribers={len(self.fanout)}>")

    @property
    def active(self) -> bool:
        """Something takes this codec's packets."""
        return len(self.fanout) > 0

    @property
    def is_open(self) -> bool:
        return self._ctx is not None

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"{self.codec}-{self.name.split('/')[0]}",
                initializer=lower_thread_priority)
        return self._executor

    def close(self) -> concurrent.futures.ThreadPoolExecutor | None:
        """Forget the encoder context (the next frame reopens it); returns the worker
        thread's executor for the caller to shut down off the loop."""
        executor, self._executor = self._executor, None
        self._ctx = None
        return executor

    def request_keyframe(self, reason: str = "") -> None:
        """Make the next frame a keyframe (requests close together are merged)."""
        self.keyframe_requests += 1
        if not self._want_keyframe:
            log.debug("%s: keyframe requested (%s)", self.name, reason)
        self._want_keyframe = True

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

    # -- the worker thread ------------------------------------------------------------

    def _gop(self, fps: int) -> int:
        return max(1, round(self.gop_seconds * fps))

    def _candidates(self) -> list[str]:
        if self.codec == VP8:
            return [VP8_ENCODER]
        if self.encoder_choice == "auto":
            return [SOFTWARE_ENCODER] if self._hardware_failed else [HARDWARE_ENCODER,
                                                                     SOFTWARE_ENCODER]
        names = [self.encoder_choice]
        if self.encoder_choice == HARDWARE_ENCODER:
            names.append(SOFTWARE_ENCODER)
        return names

    def _open(self, width: int, height: int, fps: int) -> None:
        import av

        errors = []
        for name in self._candidates():
            try:
                self._ctx = self._open_codec(name, width, height, fps)
            except (av.FFmpegError, ValueError, OSError) as exc:
                errors.append(f"{name}: {exc}")
                if name == HARDWARE_ENCODER:
                    self._hardware_failed = True
                    level = logging.INFO if self.encoder_choice == "auto" else logging.WARNING
                    log.log(level, "%s: hardware encoder unavailable (%s), using libx264",
                            self.name, exc)
                continue
            self.implementation = name
            self.codec_opens += 1
            log.info("%s: %s opened %dx%d@%d %d kbps gop %d", self.name, name, width, height,
                     fps, self._target_kbps, self._gop(fps))
            return
        raise EncoderError(f"no {self.codec.upper()} encoder could be opened: "
                           + "; ".join(errors))

    def _open_codec(self, name: str, width: int, height: int, fps: int) -> Any:
        import av

        ctx: Any = av.CodecContext.create(name, "w")
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(fps, 1)
        ctx.bit_rate = self._target_kbps * 1000
        ctx.gop_size = self._gop(fps)
        if name == SOFTWARE_ENCODER:
            ctx.options = x264_options(self._gop(fps), self.max_bitrate_kbps, self.preset,
                                       x264_threads(width, height))
            self._opened_max = self.max_bitrate_kbps
        elif name == VP8_ENCODER:
            ctx.qmin = 4
            ctx.qmax = 56
            ctx.thread_count = 1
            ctx.options = vp8_options(self._target_kbps, vp8_cpu_used(width, height))
        else:
            ctx.options = {"num_capture_buffers": "8"}
            try:
                ctx.profile = "Constrained Baseline"
            except (ValueError, AttributeError) as exc:
                log.debug("%s: cannot set the profile of %s: %s", self.name, name, exc)
        if name == VP8_ENCODER:
            with new_ranges() as mapped:
                ctx.open()
            given = give_back_zeroed(mapped, vp8_token_bytes(width, height), self.name)
            self.pages_given_back += given
            log.log(logging.INFO if given else logging.DEBUG,
                    "%s: %.1f MB of libvpx's zeroed token buffer given back to the system",
                    self.name, given / 1e6)
        else:
            ctx.open()
        self._opened_kbps = self._target_kbps
        self._opened_at = time.monotonic()
        return ctx

    def _worth_reopening(self, now: float) -> bool:
        """Reopen for a new bitrate only for a real change, and not more than every
        :data:`REOPEN_INTERVAL` (each reopen costs a keyframe)."""
        if self.implementation == SOFTWARE_ENCODER:
            return True  # raised above its VBV ceiling: only a reopen applies it
        opened = max(self._opened_kbps, 1)
        change = abs(self._target_kbps - opened) / opened
        return change >= REOPEN_CHANGE and now - self._opened_at >= REOPEN_INTERVAL

    def encode(self, frame: av.VideoFrame, captured: CapturedFrame, origin: float,
               fps: int, scale: float = 1.0, to_sinks: bool = True) -> list[EncodedPacket]:
        """Encode one yuv420p frame (worker thread), each side times ``scale`` (the
        encoder reopens at a new size); returns the packets it produced, after handing
        them to the sinks in this thread unless ``to_sinks`` is false (the caller
        does)."""
        import av

        cpu0 = time.thread_time()
        if scale != 1.0:
            frame = self.scaler.scaled(frame, scale)
        ctx = self._ctx
        if ctx is not None and (ctx.width != frame.width or ctx.height != frame.height):
            log.info("%s: frame size %dx%d -> %dx%d, reopening the encoder", self.name,
                     ctx.width, ctx.height, frame.width, frame.height)
            ctx = None
        if ctx is not None and self._target_kbps != self._opened_kbps:
            if (self.implementation == SOFTWARE_ENCODER
                    and self._target_kbps <= self._opened_max):
                ctx.bit_rate = self._target_kbps * 1000  # x264 reconfigures at next frame
                self._opened_kbps = self._target_kbps
            elif self._worth_reopening(captured.captured_at):
                # above the VBV ceiling x264 was opened with, or an encoder that takes a
                # bitrate only at open: open it again (it starts on a keyframe)
                ctx = None
        if ctx is None:
            self._open(frame.width, frame.height, fps)
            ctx = self._ctx
        frame.pts = round((captured.captured_at - origin) * 90_000)
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
        for packet in ctx.encode(frame):
            keyframe = bool(packet.is_keyframe)
            if keyframe:
                self.keyframes += 1
            out.append(EncodedPacket("video", bytes(packet), int(packet.pts), TIME_BASE,
                                     keyframe, captured.captured_at, captured.index,
                                     codec=self.codec))
        self.frames_encoded += 1
        self.packets_out += len(out)
        self.bytes_out += sum(len(p.data) for p in out)
        self.encode_cpu_seconds += time.thread_time() - cpu0
        if out and to_sinks:
            self.fanout.to_sinks(out)  # the room's RTP send, in this thread
        return out

    def publish(self, packets: list[EncodedPacket]) -> None:
        """Offer packets to every subscription (on the loop)."""
        for packet in packets:
            self.fanout.publish(packet)

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "codec": self.codec,
            "encoder": self.implementation,
            "bitrate_kbps": self._target_kbps,
            "frames_encoded": self.frames_encoded,
            "keyframes": self.keyframes,
            "keyframe_requests": self.keyframe_requests,
            "packets": self.packets_out,
            "bytes": self.bytes_out,
            "subscribers": len(self.fanout),
            "subscriber_names": sorted(self.fanout.names),
            "codec_opens": self.codec_opens,
            "zeroed_mb_given_back": round(self.pages_given_back / 1e6, 1),
            "encode_cpu_seconds": round(self.encode_cpu_seconds, 3),
        }

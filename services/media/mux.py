"""Write already-encoded packets into a container (MKV, fragmented MP4, FLV over RTMP).

Nothing here encodes: the output streams are made from templates that describe the
shared encoders' packets (a tiny parse of the first keyframe for H.264, the encoder's
AudioSpecificConfig for AAC), so opening a file or a stream never opens a codec.

A :class:`PacketMuxer` is used from one worker thread only (file and network writes block).
Timestamps are rebased so that each file or stream starts at zero at its first keyframe;
audio and video are aligned by capture time.
"""

from __future__ import annotations

import io
import logging
from fractions import Fraction
from typing import Any

from drivers.errors import EdgeroomError
from services.media.packets import EncodedPacket

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90_000)
#: MP4 that stays playable when the writer dies: every keyframe starts a self-contained
#: fragment and the header is written up front.
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
              8000, 7350)


class MuxError(EdgeroomError, OSError):
    """A container could not be opened or written."""

    code = "OUTPUT_ERROR"  # the action error it becomes (drivers/common/actions.py)


def _adts(payload: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """Wrap a raw AAC-LC frame in an ADTS header (only to let FFmpeg describe the stream)."""
    index = _AAC_RATES.index(sample_rate)
    size = len(payload) + 7
    return bytes([
        0xFF, 0xF1,
        (1 << 6) | (index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (size >> 11),
        (size >> 3) & 0xFF,
        ((size & 7) << 5) | 0x1F,
        0xFC,
    ]) + payload


class StreamTemplates:
    """Parameters of the shared encoders' streams, learned from their first packets."""

    def __init__(self) -> None:
        self._video: Any = None
        self._audio: Any = None
        self._inputs: list[Any] = []
        self.audio_extradata: bytes | None = None
        self.audio_rate = 48_000

    @property
    def video(self) -> Any:
        return self._video

    @property
    def audio(self) -> Any:
        return self._audio

    def learn_video(self, keyframe: EncodedPacket) -> None:
        """Describe the H.264 stream from a keyframe (it carries SPS and PPS)."""
        import av

        container = av.open(io.BytesIO(keyframe.data), format="h264")
        stream = container.streams.video[0]
        if not stream.codec_context.width:
            container.close()
            raise MuxError("the keyframe carries no SPS: cannot describe the video stream")
        self._inputs.append(container)
        self._video = stream

    def learn_audio(self, packet: EncodedPacket, extradata: bytes | None) -> None:
        import av

        rate = packet.time_base.denominator
        container = av.open(io.BytesIO(_adts(packet.data, rate) * 2), format="aac")
        self._inputs.append(container)
        self._audio = container.streams.audio[0]
        self.audio_extradata = extradata
        self.audio_rate = rate

    def close(self) -> None:
        for container in self._inputs:
            container.close()
        self._inputs.clear()


class PacketMuxer:
    """One open container: ``write()`` packets, then ``close()`` (idempotent).

    ``target`` is a path, or a write-only file object that the muxer then owns (closed
    with it; :meth:`abort` passed on): a network connection,
    :class:`services.media.netout.NetworkOutput`. ``fmt`` is an FFmpeg muxer name
    (``matroska``, ``mp4``, ``flv``). The first video packet written must be a keyframe;
    it becomes time zero.

    A path is opened here, as a Python file that FFmpeg writes and seeks through: PyAV
    would open, finish and close it holding Python's GIL, so a card or disk that stalls
    (an SD card erasing, dirty pages throttled) would stop every thread of the box for
    as long; Python's own file calls release the GIL while they wait.
    """

    def __init__(self, target: str | Any, fmt: str, templates: StreamTemplates, *,
                 with_audio: bool, options: dict[str, str] | None = None,
                 frame_seconds: float = 0.0) -> None:
        import av

        self.target = target
        self.frame_seconds = frame_seconds
        self.fmt = fmt
        self.origin: float | None = None
        self.bytes_written = 0
        self.video_packets = 0
        self.audio_packets = 0
        self.last_video_time = 0.0
        self._last_pts: dict[str, int] = {}
        self._closed = False
        try:
            self._sink = open(target, "wb") if isinstance(target, str) else target
        except OSError as exc:
            raise MuxError(f"cannot open {fmt} output: {exc}") from exc
        try:
            self._container: Any = av.open(self._sink, "w", format=fmt,
                                           options=options or {})
        except (av.FFmpegError, OSError) as exc:
            self._close_sink()
            raise MuxError(f"cannot open {fmt} output: {exc}") from exc
        self._video = self._container.add_stream_from_template(templates.video)
        self._video.time_base = VIDEO_TIME_BASE
        self._audio: Any = None
        if with_audio and templates.audio is not None:
            self._audio = self._container.add_stream_from_template(templates.audio)
            if templates.audio_extradata:
                self._audio.codec_context.extradata = templates.audio_extradata
            self._audio.time_base = Fraction(1, templates.audio_rate)

    def __repr__(self) -> str:
        return (f"<PacketMuxer {self.fmt} video={self.video_packets} audio={self.audio_packets} "
                f"closed={self._closed}>")

    @property
    def has_audio(self) -> bool:
        return self._audio is not None

    def write(self, packet: EncodedPacket) -> bool:
        """Mux one packet; returns False when it was skipped (before the start, or late)."""
        import av

        if self._closed:
            raise MuxError("write to a closed muxer")
        if packet.kind == "video":
            stream = self._video
            if self.origin is None:
                if not packet.keyframe:
                    return False
                self.origin = packet.captured_at
        else:
            stream = self._audio
            if stream is None or self.origin is None:
                return False
        assert self.origin is not None
        rate = stream.time_base.denominator // max(stream.time_base.numerator, 1)
        pts = round((packet.captured_at - self.origin) * rate)
        if pts < 0 or pts <= self._last_pts.get(packet.kind, -1):
            return False
        self._last_pts[packet.kind] = pts
        out = av.Packet(packet.data)
        out.stream = stream
        out.time_base = stream.time_base
        out.pts = pts
        out.dts = pts
        if packet.kind == "video" and self.frame_seconds:
            out.duration = round(self.frame_seconds * rate)
        if packet.keyframe:
            out.is_keyframe = True
        try:
            self._container.mux(out)
        except (av.FFmpegError, OSError) as exc:
            raise MuxError(f"{self.fmt} write failed: {exc}") from exc
        self.bytes_written += len(packet.data)
        if packet.kind == "video":
            self.video_packets += 1
            self.last_video_time = packet.captured_at
        else:
            self.audio_packets += 1
        return True

    @property
    def duration(self) -> float:
        """Seconds of video written so far (to the end of the last frame)."""
        if self.origin is None:
            return 0.0
        return self.last_video_time - self.origin + self.frame_seconds

    def close(self) -> None:
        """Finish the container (trailer, index); idempotent, never raises for I/O."""
        import av

        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            log.warning("closing %s output: %s", self.fmt, exc)
        finally:
            self._close_sink()

    def _close_sink(self) -> None:
        if self._sink is not None:
            try:
                self._sink.close()
            except OSError as exc:
                log.warning("closing %s output: %s", self.fmt, exc)

    def abort(self) -> None:
        """Make a network write or close in progress (in another thread) end at once."""
        if self._sink is not None and hasattr(self._sink, "abort"):
            self._sink.abort()

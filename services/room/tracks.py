"""The media tracks this box sends: its mic (with mute and volume) and its camera.

Tracks are pulled by aiortc (``await track.recv()``), so the devices pace the sending.
The mic track applies the session's controls to every frame, so mic off, deaf and the
mic volume change what is sent at once, without renegotiation; it encodes them to Opus
itself and hands aiortc packets. The video track can be
switched off (closing the camera) and on again (opening a new one) behind the same
sender; its timestamps stay monotonic across the switch.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, MicSource, PcmFrame
from drivers.camera.base import VideoSource
from services.media.budget import AUDIO_DEADLINE

if TYPE_CHECKING:
    from services.room.narrowband_send import NarrowbandSendEncoder
from services.room.level_talk import level_of_dbfs
from services.room.opus_send import (
    SILENT_LEVEL,
    OpusPacket,
    OpusSendEncoder,
    OpusSendSettings,
    install_audio_sender_hooks,
)

log = logging.getLogger(__name__)

AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)

#: What the mic track asks of the session on every frame:
#: (is the mic open for the room?, send its sound?, volume percent). A listener does not
#: use the mic.
MicGate = Callable[[], tuple[bool, bool, int]]


def apply_volume(samples: bytes, percent: int) -> bytes:
    if percent >= 100:
        return samples
    if percent <= 0:
        return bytes(len(samples))
    pcm = np.frombuffer(samples, dtype=np.int16).astype(np.int32)
    return ((pcm * percent) // 100).astype(np.int16).tobytes()


def _level_sent(pcm: PcmFrame, volume: int) -> int | None:
    """RFC 6464 level of what is sent of ``pcm`` at ``volume`` percent, from the level the
    mic path measured (None when it did not, or when the mono mix changes it)."""
    if pcm.level_dbfs is None or pcm.channels != 1:
        return None
    if volume <= 0:
        return SILENT_LEVEL
    gain_db = 20.0 * math.log10(volume / 100) if volume < 100 else 0.0
    return level_of_dbfs(pcm.level_dbfs + gain_db)


class MicTrack(MediaStreamTrack):
    """Opus packets of a :class:`MicSource`, or of paced silence when there is none
    (listener). aiortc sends the packets as they are (see :mod:`services.room.opus_send`).
    """

    kind = "audio"

    def __init__(self, mic: MicSource | None, gate: MicGate,
                 opus: OpusSendSettings | None = None,
                 mix: Callable[[bytes], bytes] | None = None) -> None:
        super().__init__()
        #: added to every frame after the gate and volume (playbacks into the room)
        self._mix = mix
        install_audio_sender_hooks()
        self._mic = mic
        self._gate = gate
        self._next_at: float | None = None
        self._silence = bytes(FRAME_SAMPLES * 2)
        self.encoder: OpusSendEncoder | NarrowbandSendEncoder = OpusSendEncoder(opus)
        AUDIO_DEADLINE.restart()  # a new stream: the last call's lateness is not this one's
        self._packets: deque[OpusPacket] = deque()
        self._packet_s = self.encoder.frame_samples / SAMPLE_RATE
        self._batch_at = 0.0
        self._batch_sent = 0
        #: when the mic frame being sent was complete (None: paced silence)
        self._frame_due: float | None = None
        self.frames = 0
        #: RFC 6464 level of the packet last returned (aiortc puts it in the RTP header)
        self.last_audio_level: int | None = None
        #: RFC 6464 level of the samples :meth:`_next_samples` returned last, from the
        #: level the mic path measured (None: to be computed from the samples)
        self._samples_level: int | None = None

    async def recv(self) -> av.Packet:
        if self._packets:
            # A mic frame longer than a packet (20 ms frames, 10 ms packets) gave several:
            # they go out one packet-length apart, as they would from a mic delivering
            # packet-sized frames, not in a burst the receiver would take for jitter.
            self._batch_sent += 1
            delay = self._batch_at + self._batch_sent * self._packet_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            samples = await self._next_samples()
            if self.readyState != "live":  # stopped while the frame was awaited
                raise MediaStreamError
            self._packets.extend(self.encoder.encode(samples, self._samples_level))
            self._batch_at = time.monotonic()
            self._batch_sent = 0
        if self.readyState != "live":
            raise MediaStreamError
        encoded = self._packets.popleft()
        if self._frame_due is not None:  # how late the audio leaves, for the video budget
            AUDIO_DEADLINE.report(time.monotonic() - self._frame_due
                                  - self._batch_sent * self._packet_s)
        packet = av.Packet(encoded.data)
        packet.pts = encoded.pts
        packet.dts = encoded.pts
        packet.time_base = AUDIO_TIME_BASE
        self.last_audio_level = encoded.level
        return packet

    def use_codec(self, codec: str) -> None:
        """Send ``codec``, the one the room took (before the track is first read): Opus,
        or G.711 or G.722 in a room that takes no Opus."""
        if codec == "opus":
            return
        from services.room.narrowband_send import NarrowbandSendEncoder

        old, self.encoder = self.encoder, NarrowbandSendEncoder(codec)
        old.close()
        self._packet_s = self.encoder.frame_samples / SAMPLE_RATE

    def on_receiver_report(self, loss_pct: float) -> None:
        """The room server's receiver report on this stream: its loss is what the
        encoder's FEC is planned for."""
        self.encoder.set_expected_loss(loss_pct)

    async def _next_samples(self) -> bytes:
        # The session opens and closes the mic (listener, deaf, not in the room: closed);
        # this track only reads it while it is open.
        use_mic = self._gate()[0]
        samples = None
        level: int | None = SILENT_LEVEL
        if self._mic is not None and use_mic:
            try:
                pcm = await self._mic.read()
            except EOFError:
                if self._gate()[0]:
                    self.stop()
                    raise MediaStreamError from None
                # closed on purpose while this frame was awaited: send silence
            else:
                # The gate is read after the frame arrived: a mute pressed while it was
                # being captured already silences it.
                _, send, volume = self._gate()
                channels = max(1, pcm.channels)
                self._frame_due = pcm.captured_at + len(pcm.samples) / (2 * channels
                                                                         * SAMPLE_RATE)
                samples = pcm.samples if send else bytes(len(pcm.samples) // pcm.channels)
                if send:
                    level = _level_sent(pcm, volume)
                if send and pcm.channels != 1:  # keep what we send mono
                    stereo = np.frombuffer(samples, dtype=np.int16).reshape(-1, pcm.channels)
                    samples = stereo.mean(axis=1).astype(np.int16).tobytes()
                self._next_at = None
        if samples is None:
            self._frame_due = None
            samples = self._silence
            await self._pace()
            _, send, volume = self._gate()
        if send and volume < 100:
            samples = apply_volume(samples, volume)
        if self._mix is not None:
            mixed = self._mix(samples)
            if mixed is not samples:  # a playback went into it: measure what is sent
                samples, level = mixed, None
        self._samples_level = level
        self.frames += 1
        return samples

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self.encoder.close()

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._next_at is None or self._next_at < now - 0.2:
            self._next_at = now
        delay = self._next_at - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_at += FRAME_SAMPLES / SAMPLE_RATE


class CameraTrack(MediaStreamTrack):
    """Frames of a :class:`VideoSource` for aiortc to encode; stopping it stops the camera."""

    kind = "video"

    def __init__(self, camera: VideoSource) -> None:
        super().__init__()
        self.camera = camera
        self._started = False
        self.last_index = -1  # number of the last frame handed to the encoder

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._started = True
            await self.camera.start()
        try:
            captured = await self.camera.read()
        except EOFError:
            self.stop()
            raise MediaStreamError from None
        self.last_index = captured.index
        return captured.frame

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            task = asyncio.get_event_loop().create_task(self.camera.stop(),
                                                        name="camera:stop")
            _background.add(task)
            task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


class SwitchableVideoTrack(MediaStreamTrack):
    """A video track that can be switched off (inner track stopped) and on (a new one).

    While off, :meth:`recv` waits and nothing is sent. Output timestamps continue from
    where they were, advanced by the wall time that passed, so the receiver's decoder
    never sees time go backwards.
    """

    kind = "video"

    def __init__(self, factory: Callable[[], MediaStreamTrack], enabled: bool = True) -> None:
        super().__init__()
        self._factory = factory
        self._inner: MediaStreamTrack | None = None
        self.codec: str | None = None
        self._on = asyncio.Event()
        self._offset: int | None = None  # added to inner pts (90 kHz)
        self._last_out = -1
        self._last_wall = 0.0
        self._rtp_sink: Any = None
        #: whether the inner tracks take an RTP sink (decided by the first one made)
        self.takes_rtp_sink = False
        if enabled:
            self.switch(True)

    @property
    def enabled(self) -> bool:
        return self._on.is_set()

    @property
    def inner(self) -> MediaStreamTrack | None:
        """The track being sent now (None while switched off)."""
        return self._inner

    def set_codec(self, codec: str) -> None:
        """The codec the connection negotiated: passed on to every inner track that sends
        pre-encoded packets (a track of frames is encoded by aiortc in whatever codec was
        negotiated)."""
        self.codec = codec
        setter = getattr(self._inner, "set_codec", None)
        if setter is not None:
            setter(codec)

    def set_rtp_sink(self, sink: Any) -> None:
        """Send from the encoder's thread (:mod:`services.room.video_send`): passed on to
        every inner track, which then hands its packets to ``sink`` instead of
        :meth:`recv`; the sink keeps the timestamps running across a switch."""
        self._rtp_sink = sink
        setter = getattr(self._inner, "set_rtp_sink", None)
        if setter is not None:
            setter(sink)

    def clear_rtp_sink(self, sink: Any) -> None:
        if sink is not self._rtp_sink:
            return
        self._rtp_sink = None
        clear = getattr(self._inner, "clear_rtp_sink", None)
        if clear is not None:
            clear(sink)

    def switch(self, enabled: bool) -> None:
        if enabled and self._inner is None and self.readyState == "live":
            self._inner = self._factory()
            self.takes_rtp_sink = hasattr(self._inner, "set_rtp_sink")
            if self.codec is not None:
                self.set_codec(self.codec)
            if self._rtp_sink is not None:
                self.set_rtp_sink(self._rtp_sink)
            self._offset = None
            self._on.set()
            log.info("video: off -> on")
        elif not enabled and self._inner is not None:
            self._on.clear()
            inner, self._inner = self._inner, None
            inner.stop()
            log.info("video: on -> off (camera closed)")

    async def recv(self) -> Any:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._on.wait()
            inner = self._inner
            if inner is None:
                continue
            try:
                frame = await inner.recv()
            except MediaStreamError:
                if inner is not self._inner:
                    continue  # switched off (or replaced) while waiting
                raise
            return self._restamp(frame)

    def _restamp(self, frame: Any) -> Any:
        pts = frame.pts
        time_base = frame.time_base
        if pts is None or time_base is None:
            return frame
        # the shared encoder's packets are in 1/90000 already: no Fraction arithmetic
        same_base = time_base == VIDEO_TIME_BASE
        pts90 = pts if same_base else int(pts * time_base * VIDEO_CLOCK)
        now = time.monotonic()
        if self._offset is None:
            gap = int((now - self._last_wall) * VIDEO_CLOCK) if self._last_out >= 0 else 0
            self._offset = (self._last_out + max(gap, 1)) - pts90
        out = pts90 + self._offset
        if out <= self._last_out:
            out = self._last_out + 1
        self._last_out = out
        self._last_wall = now
        frame.pts = out
        if not same_base:
            frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        self.switch(False)
        super().stop()
        self._on.set()  # wake a waiting recv so it sees the end

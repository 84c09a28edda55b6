"""The mic in G.711 or G.722, for a room that takes no Opus (``audiocodec = "pcmu"``).

The box offers Opus alone first (:mod:`services.room.negotiation`); only when the room
refuses it does the box offer these, and the mic track then sends the codec the room
picked through this encoder instead of :class:`services.room.opus_send.OpusSendEncoder`.
FFmpeg encodes, after libswresample has brought the 48 kHz mic down to the codec's rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from drivers.lazy import lazy_module
from services.audio.narrowband import RATE, open_codec
from services.room.opus_send import OpusPacket, audio_level, whole_frames

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")


class NarrowbandSendEncoder:
    """The mic's 48 kHz mono PCM to G.711 or G.722 packets of ``frame_ms``, with the
    interface of :class:`services.room.opus_send.OpusSendEncoder` that the mic track
    uses. ``pts`` counts 48 kHz samples, as for Opus: aiortc's packer converts it to
    the codec's 8 kHz RTP clock."""

    def __init__(self, codec: str, frame_ms: int = 20) -> None:
        import av

        self._context = open_codec(codec, "w")
        self._context.open()
        rate = self._context.sample_rate
        self.codec = codec
        self.frame_samples = RATE * frame_ms // 1000
        self._resampler: Any = av.AudioResampler(format="s16", layout="mono", rate=rate,
                                                 frame_size=rate * frame_ms // 1000)
        self._frame = av.AudioFrame
        self._pending = np.zeros(0, np.int16)
        self._pts = 0
        self.packets = self.bytes = 0

    def __repr__(self) -> str:
        return f"<NarrowbandSendEncoder {self.codec} {self.packets} packets>"

    def set_expected_loss(self, percent: float) -> None:
        """No FEC to plan in these codecs."""

    def encode(self, samples: bytes, level: int | None = None) -> Iterator[OpusPacket]:
        """The packets ``samples`` complete (none while less than a frame is buffered)."""
        n = self.frame_samples
        blocks, self._pending = whole_frames(self._pending, samples, n)
        for block in blocks:
            frame = self._frame.from_ndarray(block.reshape(1, -1), format="s16",
                                             layout="mono")
            frame.sample_rate = RATE
            packet_level = audio_level(block) if level is None else level
            # One packet per frame the resampler completes (none for the first block:
            # it holds back its filter's delay once), each one frame_ms later.
            for out in self._resampler.resample(frame):
                for packet in self._context.encode(out):
                    data = bytes(packet)
                    pts = self._pts
                    self._pts += n
                    self.packets += 1
                    self.bytes += len(data)
                    yield OpusPacket(data, pts, packet_level)

    @property
    def stats(self) -> dict[str, Any]:
        return {"codec": self.codec, "packets": self.packets, "bytes": self.bytes}

    def close(self) -> None:
        self._context = self._resampler = None

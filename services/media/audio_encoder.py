"""The one AAC encoder that recordings and the RTMP stream share, fed by a mic branch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from drivers.audio.base import SAMPLE_RATE, MicSource, PcmFrame
from drivers.lazy import lazy_module
from services.media.packets import EncodedPacket, PacketFanout, PacketSubscription

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

#: A gap in the mic's capture times longer than this (a lost 20 ms frame is longer) is
#: filled with silence, up to :data:`MAX_FILL`, so audio stays aligned with video.
GAP_TOLERANCE = 0.012
MAX_FILL = 1.0


class SharedAudioEncoder:
    """AAC-LC from one mic branch, fanned out to every output that wants audio."""

    def __init__(self, mic: MicSource, bitrate_kbps: int = 96, name: str = "aac") -> None:
        self.name = name
        self.bitrate_kbps = bitrate_kbps
        self._mic = mic
        self._fanout = PacketFanout()
        self._task: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._codec: Any = None
        self._anchor_time = 0.0
        self._samples_fed = 0
        self.sample_rate = SAMPLE_RATE
        self.extradata: bytes | None = None
        self.frames_in = 0
        self.packets_out = 0
        self.silence_filled = 0

    def __repr__(self) -> str:
        return (f"<SharedAudioEncoder {self.name} running={self.is_running} "
                f"packets={self.packets_out} subscribers={len(self._fanout)}>")

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    def attach(self, sub: PacketSubscription) -> None:
        self._fanout.add(sub)

    def detach(self, sub: PacketSubscription) -> None:
        self._fanout.remove(sub)

    async def start(self) -> None:
        if self.is_running:
            return
        await self._mic.start()
        self._codec = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"aac-{self.name}")
        self._task = asyncio.create_task(self._run(), name=f"encoder:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._mic.stop()
        executor, self._executor = self._executor, None
        if executor is not None:  # waits for the encode in progress: off the event loop
            await asyncio.to_thread(executor.shutdown, True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        try:
            while True:
                try:
                    frame = await self._mic.read()
                except EOFError:
                    log.info("%s: the microphone stopped", self.name)
                    return
                self.frames_in += 1
                for packet in await loop.run_in_executor(executor, self._encode, frame):
                    self.packets_out += 1
                    self._fanout.publish(packet)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s encoder failed", self.name)
            raise

    def _open(self, frame: PcmFrame) -> None:
        import av

        codec: Any = av.CodecContext.create("aac", "w")
        codec.sample_rate = frame.sample_rate
        codec.layout = "mono"
        codec.format = "fltp"
        codec.bit_rate = self.bitrate_kbps * 1000
        codec.time_base = Fraction(1, frame.sample_rate)
        codec.open()
        self._codec = codec
        self.sample_rate = frame.sample_rate
        self.extradata = bytes(codec.extradata or b"")
        self._anchor_time = frame.captured_at
        self._samples_fed = 0

    def _samples(self, frame: PcmFrame) -> np.ndarray[Any, np.dtype[np.float32]]:
        pcm = np.frombuffer(frame.samples, dtype="<i2").astype(np.float32) / 32768.0
        if frame.channels > 1:
            pcm = pcm.reshape(-1, frame.channels).mean(axis=1)
        return pcm

    def _encode(self, frame: PcmFrame) -> list[EncodedPacket]:
        import av

        if self._codec is None or frame.sample_rate != self.sample_rate:
            self._open(frame)
        rate = self.sample_rate
        expected = self._anchor_time + self._samples_fed / rate
        gap = frame.captured_at - expected
        chunks = []
        if gap > MAX_FILL:
            # a long outage: start a new timeline instead of encoding seconds of silence
            self._anchor_time = frame.captured_at - self._samples_fed / rate
        elif gap > GAP_TOLERANCE:
            missing = round(gap * rate)
            self.silence_filled += missing
            chunks.append(np.zeros(missing, dtype=np.float32))
        chunks.append(self._samples(frame))
        out = []
        for pcm in chunks:
            av_frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="fltp",
                                                  layout="mono")
            av_frame.sample_rate = rate
            av_frame.pts = self._samples_fed
            av_frame.time_base = Fraction(1, rate)
            self._samples_fed += pcm.shape[0]
            for packet in self._codec.encode(av_frame):
                pts = int(packet.pts)
                out.append(EncodedPacket("audio", bytes(packet), pts, Fraction(1, rate), True,
                                         self._anchor_time + pts / rate, codec="aac"))
        return out

    @property
    def stats(self) -> dict[str, Any]:
        return {"frames_in": self.frames_in, "packets": self.packets_out,
                "silence_filled_samples": self.silence_filled,
                "subscribers": len(self._fanout)}


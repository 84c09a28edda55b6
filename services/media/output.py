"""What the recorder and the RTMP streamer share: a subscription to both encoders, the
stream templates learned from the first packets, and a writer thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from services.media.audio_encoder import SharedAudioEncoder
from services.media.encoder import SharedVideoEncoder
from services.media.mux import StreamTemplates
from services.media.packets import EncodedPacket, PacketSubscription

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long an output waits for the first audio packet before it starts without audio.
AUDIO_WAIT = 1.0
#: Packets (video and audio) an output may fall behind before it drops and resyncs:
#: about 3 s at 30 fps with audio.
QUEUE_PACKETS = 240


class EncodedInput:
    """Both encoders' packets for one output, in one bounded queue, plus their templates."""

    def __init__(self, name: str, video: SharedVideoEncoder,
                 audio: SharedAudioEncoder | None, queue_packets: int = QUEUE_PACKETS) -> None:
        self.name = name
        self.queue_packets = queue_packets
        self.video = video
        self.audio = audio
        self.templates = StreamTemplates()
        kinds: tuple[Any, ...] = ("video", "audio") if audio is not None else ("video",)
        self.sub = PacketSubscription(name, queue_packets, video.request_keyframe, kinds=kinds)
        self._pending: list[EncodedPacket] = []
        self._pending_since = 0.0

    def attach(self) -> None:
        self.sub = PacketSubscription(self.name, self.queue_packets, self.video.request_keyframe,
                                      kinds=self.sub.kinds)
        self.video.attach(self.sub)
        if self.audio is not None:
            self.audio.attach(self.sub)

    def detach(self) -> None:
        self.sub.close()
        self.video.detach(self.sub)
        if self.audio is not None:
            self.audio.detach(self.sub)

    @property
    def ready(self) -> bool:
        return self.templates.video is not None

    def learn(self, batch: list[EncodedPacket]) -> list[EncodedPacket]:
        """Hold packets back until both streams are described; then return them all."""
        for packet in batch:
            if packet.kind == "video" and packet.keyframe and self.templates.video is None:
                self.templates.learn_video(packet)
                self._pending_since = time.monotonic()
            if (packet.kind == "audio" and self.templates.audio is None
                    and self.audio is not None):
                self.templates.learn_audio(packet, self.audio.extradata)
        if self.templates.video is None:
            return []  # still waiting for a keyframe
        self._pending.extend(batch)
        audio_due = self.audio is not None and self.templates.audio is None
        if audio_due and time.monotonic() - self._pending_since < AUDIO_WAIT:
            return []
        if audio_due:
            log.warning("%s: no audio from the microphone, continuing with video only",
                        self.name)
        out, self._pending = self._pending, []
        return out

    def reset(self) -> None:
        self._pending = []
        self.templates.close()
        self.templates = StreamTemplates()


class WriterThread:
    """One thread for an output's blocking file or network writes."""

    def __init__(self, name: str) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self, wait: bool = True) -> None:
        # A write stuck on a dead network peer must not hang the appliance's stop.
        self._executor.shutdown(wait=wait, cancel_futures=True)

    async def aclose(self) -> None:
        """Let the write in progress finish, then end the thread; the waiting happens off
        the event loop."""
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

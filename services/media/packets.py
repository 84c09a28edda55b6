"""Encoded packets and the bounded subscriptions that carry them to each output.

One encoder feeds many outputs (the room, a recording, an RTMP push). Each output reads
its own :class:`PacketSubscription`: a bounded queue that drops its oldest packet when the
output falls behind. A video stream cannot be decoded past a dropped packet, so after a
drop the subscription discards video until the next keyframe and asks the encoder for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

log = logging.getLogger(__name__)

Kind = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded access unit, shared read-only by every output.

    ``pts`` is in ``time_base`` and counts from the encoder's own start; ``captured_at``
    is the capture instant on ``time.monotonic()`` (the clock audio and video share), so
    outputs align audio with video by it. ``codec`` says what ``data`` is: ``"h264"``
    (Annex-B, SPS/PPS repeated before every keyframe), ``"vp8"`` (one VP8 frame) or
    ``"aac"`` (raw AAC).
    """

    kind: Kind
    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool
    captured_at: float
    index: int = 0
    codec: str = "h264"


class PacketSubscription:
    """A drop-oldest queue of :class:`EncodedPacket` for one output.

    Starts waiting for a keyframe (video before the first keyframe is useless);
    ``on_keyframe_needed`` is called whenever it starts waiting.
    """

    def __init__(self, name: str, maxsize: int,
                 on_keyframe_needed: Callable[[str], None] | None = None,
                 kinds: tuple[Kind, ...] = ("video", "audio")) -> None:
        if maxsize < 2:
            raise ValueError("maxsize must be >= 2")
        self.name = name
        self.maxsize = maxsize
        self.kinds = kinds
        self.dropped = 0
        self.delivered = 0
        self.waiting_keyframe = "video" in kinds
        self._on_keyframe_needed = on_keyframe_needed
        self._items: deque[EncodedPacket] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (f"<PacketSubscription {self.name} {len(self._items)}/{self.maxsize} "
                f"dropped={self.dropped} waiting_keyframe={self.waiting_keyframe}>")

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def wants(self, kind: Kind) -> bool:
        return kind in self.kinds

    def resync(self, reason: str) -> None:
        """Drop queued video and wait for the next keyframe (after a drop or a reconnect)."""
        if "video" not in self.kinds:
            return
        self._items = deque(p for p in self._items if p.kind != "video")
        if not self.waiting_keyframe:
            self.waiting_keyframe = True
        if self._on_keyframe_needed is not None:
            self._on_keyframe_needed(f"{self.name}: {reason}")

    def put(self, packet: EncodedPacket) -> None:
        """Offer a packet (on the event loop)."""
        if self._closed or packet.kind not in self.kinds:
            return
        if packet.kind == "video" and self.waiting_keyframe:
            if not packet.keyframe:
                return
            self.waiting_keyframe = False
        if len(self._items) >= self.maxsize:
            lost = self._items.popleft()
            self.dropped += 1
            if lost.kind == "video":
                log.debug("%s fell behind, waiting for a keyframe", self.name)
                self.resync("fell behind")
                if packet.kind == "video" and not packet.keyframe:
                    self._wake()
                    return
                if packet.kind == "video":
                    self.waiting_keyframe = False
        self._items.append(packet)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> EncodedPacket:
        if not self._items:
            raise asyncio.QueueEmpty
        self.delivered += 1
        return self._items.popleft()

    def drain(self) -> list[EncodedPacket]:
        """Everything queued now (possibly nothing)."""
        items = list(self._items)
        self._items.clear()
        self.delivered += len(items)
        return items

    async def get(self) -> EncodedPacket:
        """The next packet; raises :class:`EOFError` once closed and empty."""
        while not self._items:
            if self._closed:
                raise EOFError(f"{self.name} closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()

    async def get_batch(self, linger: float = 0.0) -> list[EncodedPacket]:
        """At least one packet: everything queued once one is there.

        ``linger`` waits that long after the first packet, so that a writer thread is
        woken once per batch rather than once per packet.
        """
        first = await self.get()
        if linger > 0:
            await asyncio.sleep(linger)
        return [first, *self.drain()]

    def close(self) -> None:
        """Idempotent; a waiting reader gets EOFError once the queue is empty."""
        self._closed = True
        self._wake()


class PacketFanout:
    """Who takes one producer's packets: subscriptions, offered the packets on the event
    loop, and sinks, called with each frame's packets in the thread that encoded it (the
    room's RTP send, :mod:`services.room.video_send`).

    The sinks are kept as a tuple that is replaced, never changed, so the encode thread
    reads a consistent set while the loop adds or removes one.
    """

    def __init__(self) -> None:
        self._subs: list[PacketSubscription] = []
        self._sinks: tuple[tuple[str, Callable[[list[EncodedPacket]], None]], ...] = ()

    def __len__(self) -> int:
        return len(self._subs) + len(self._sinks)

    @property
    def names(self) -> list[str]:
        return [sub.name for sub in self._subs] + [name for name, _ in self._sinks]

    @property
    def has_subscriptions(self) -> bool:
        """Something takes the packets on the event loop."""
        return bool(self._subs)

    def add(self, sub: PacketSubscription) -> None:
        self._subs.append(sub)

    def remove(self, sub: PacketSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def add_sink(self, name: str, sink: Callable[[list[EncodedPacket]], None]) -> None:
        """Call ``sink(packets)`` with every frame's packets, in the encode thread."""
        if all(s is not sink for _, s in self._sinks):
            self._sinks = (*self._sinks, (name, sink))

    def remove_sink(self, sink: Callable[[list[EncodedPacket]], None]) -> bool:
        """Stop calling ``sink``; True when it was there."""
        kept = tuple(entry for entry in self._sinks if entry[1] is not sink)
        removed = len(kept) != len(self._sinks)
        self._sinks = kept
        return removed

    def to_sinks(self, packets: list[EncodedPacket]) -> None:
        """Hand one frame's packets to every sink (the encode thread); a sink that fails
        is logged and the others still get them."""
        for name, sink in self._sinks:
            try:
                sink(packets)
            except Exception:
                log.exception("packet sink %s failed", name)

    def publish(self, packet: EncodedPacket) -> None:
        for sub in list(self._subs):
            if sub.closed:
                self._subs.remove(sub)
            else:
                sub.put(packet)

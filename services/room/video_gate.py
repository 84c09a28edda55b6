"""Received video is decoded only while something on the box takes the frames.

aiortc decodes every complete frame a video receiver reassembles, in the receiver's
decoder thread, whether or not anything reads the track. A box subscribed to the members'
video (``video.receive = true``) with nothing showing it (no screen found, the display
off) would decode three or more streams for nothing: a decoder's buffers per stream and
the CPU of every frame. :class:`VideoGate` takes the place of the receiver's jitter
buffer: it reassembles frames as aiortc's does (so RTCP, NACKs and the statistics go on)
and hands them to the decoder only while ``wanted()`` says a consumer is there.

When frames are wanted again, or another sender takes the stream over (the server
reuses a stream for a new member), the decoder must start at a keyframe (a delta frame on top
of a stale or empty picture shows garbage until the next one): the gate asks the sender
for one (a PLI, through aiortc's receiver) and drops delta frames until it arrives,
asking again every :data:`PLI_INTERVAL_S` while it waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

#: While waiting for a keyframe, ask for one again this often.
PLI_INTERVAL_S = 1.0
_H264_KEY_NALS = (5, 7)  # IDR slice, SPS (a keyframe's first NAL units)


def is_keyframe(data: bytes) -> bool:
    """Whether a reassembled H.264 (Annex B, as aiortc depayloads it) or VP8 frame can be
    decoded on its own."""
    # VP8 (RFC 6386 9.1): the frame tag's bit 0 is 0 and the start code 9d 01 2a follows
    if len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a":
        return True
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        if data[start + 3] & 0x1F in _H264_KEY_NALS:
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False


class VideoGate(JitterBuffer):
    """A video receiver's jitter buffer that passes frames on only while ``wanted()``."""

    def __init__(self, capacity: int, wanted: Callable[[], bool]) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.wanted = wanted
        self.passed = 0
        self.held = 0
        self._need_key = True
        self._asked_at: float | None = None
        self._ssrc: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if packet.ssrc != self._ssrc:  # another sender on this stream (a reused mid)
            self._ssrc = packet.ssrc
            self._need_key = True
        if not self.wanted():
            if frame is not None:
                self.held += 1
            self._need_key = True
            self._asked_at = None
            return False, None  # no keyframe asked for a picture nobody looks at
        if self._need_key:
            if frame is not None and is_keyframe(frame.data):
                self._need_key = False
            else:
                if frame is not None:
                    self.held += 1
                now = time.monotonic()
                if self._asked_at is None or now - self._asked_at >= PLI_INTERVAL_S:
                    self._asked_at = now
                    pli = True
                return pli, None
        if frame is not None:
            self.passed += 1
        return pli, frame


def gate_video_frames(receiver: Any, wanted: Callable[[], bool]) -> VideoGate | None:
    """Put a :class:`VideoGate` in a video receiver, in place of aiortc's jitter buffer.

    Must run before media flows (from the ``track`` event); idempotent. It uses aiortc's
    internals (the receiver's name-mangled ``__jitter_buffer``), so it checks them and
    leaves the receiver alone (returning None: every frame is decoded) if they differ.
    """
    attr = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, attr, None)
    if isinstance(current, VideoGate):
        current.wanted = wanted
        return current
    if not isinstance(current, JitterBuffer) or not getattr(current, "_is_video", False):
        log.warning("video receive path not gated (aiortc internals differ): "
                    "every received frame is decoded")
        return None
    gate = VideoGate(current.capacity, wanted)
    setattr(receiver, attr, gate)
    return gate

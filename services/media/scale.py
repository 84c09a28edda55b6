"""Frames made smaller for an encode the audio-first budget has scaled down.

``VideoFrame.reformat`` gives every frame its own libswscale context: built for that
frame (filter tables, and a pool of slice threads, one per core, when the thread count
is left to libswscale) and torn down when the frame is freed, wherever that happens
(the thread that drops the last reference: the page's snapshot, the recorder). At
640x480 to 320x240 that is about 1.8 ms of CPU a frame on this machine, against
0.35 ms for the scaling itself, and it is paid exactly when the CPU is short, since
only then does the budget scale the video down. :class:`FrameScaler` keeps one context
per encode for as long as the size stays the same, and scales on the calling thread
(the encode's worker): one frame at a time needs no slice threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import av


def even(x: float) -> int:
    """``x`` rounded to an even number of pixels (yuv420p), at least 2."""
    return max(2, round(x / 2) * 2)


class FrameScaler:
    """Scales yuv420p frames by a factor with one reused libswscale context.

    Not thread-safe: one encode (one worker thread) owns it.
    """

    def __init__(self) -> None:
        self._reformatter: Any = None
        self._size: tuple[int, int, int, int] | None = None
        #: libswscale contexts made (one per change of size)
        self.contexts = 0
        self.frames = 0

    def scaled(self, frame: av.VideoFrame, scale: float) -> av.VideoFrame:
        """``frame`` with each side times ``scale`` (even sizes); ``frame`` itself at 1."""
        width, height = even(frame.width * scale), even(frame.height * scale)
        if (width, height) == (frame.width, frame.height):
            return frame
        size = (frame.width, frame.height, width, height)
        if self._reformatter is None or size != self._size:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
            self._size = size
            self.contexts += 1
        self.frames += 1
        out: av.VideoFrame = self._reformatter.reformat(
            frame, width=width, height=height, format="yuv420p", threads=1)
        return out

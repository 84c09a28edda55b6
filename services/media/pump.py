"""The camera's frames read, encoded and sent off the event loop.

A camera that can be read from a thread (``reads_in_thread``: the sim camera, the V4L2
and Pi cameras, and an oriented camera around any of them) is driven by
:func:`run_frame_pump` instead of the loop: one thread per run of the shared encoder
reads each frame, shows it to the frame observers (they take a frame from any thread),
asks the budget whether to encode it, and encodes it (below). This thread then hands
each codec's packets to its sinks (the room's RTP send,
:mod:`services.room.video_send`), so while the room is the only consumer the loop sees
nothing per frame. Subscriptions on the loop (recordings, RTMP, the page's preview) get
the packets through one ``call_soon_threadsafe`` per frame, as the loop path gave them.

With one codec in use, this thread encodes the frame itself, at the encoders' nice
value for the length of the encode only (:class:`~drivers.common.nicer.NicerWhile`):
x264 and libvpx release the GIL while they encode, and a worker thread would cost two
more wake-ups a frame (this thread's and the worker's). With two codecs, or where the
thread may not set its nice value back (no ``LimitNICE``, no CAP_SYS_NICE), each codec
encodes in its own worker thread at that nice value, side by side. The Python this
thread runs (reading the camera, packetizing, building headers) stays at the loop's
priority: a thread at a higher nice value that holds the GIL when a CPU quota runs out
keeps the event loop (the audio) waiting for the GIL until it is scheduled again. When
the CPU is short, the video gives way through the audio-first budget (fewer frames,
smaller ones), not through priority.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from drivers.camera.base import CapturedFrame
from drivers.common.nicer import NicerWhile
from drivers.threadname import name_this_thread
from services.media.codecs import ENCODER_NICE, CodecEncode
from services.media.packets import EncodedPacket

if TYPE_CHECKING:
    import av

    from services.media.budget import VideoBudget

log = logging.getLogger(__name__)

#: How long one blocking camera read waits before the thread checks for a stop (s).
READ_TIMEOUT = 0.25


class ThreadReadableCamera(Protocol):
    fps: int

    def read_sync(self, timeout: float) -> CapturedFrame | None:
        """The newest frame not yet returned, waiting up to ``timeout`` s (None when
        none came); EOFError once the camera is stopped."""
        ...


class FrameEncoder(Protocol):
    """What the frame thread uses of :class:`~services.media.encoder.SharedVideoEncoder`."""

    name: str
    budget: VideoBudget
    frames_in: int
    frames_unused: int

    @property
    def active_codecs(self) -> list[str]: ...

    @property
    def codec_encodes(self) -> list[CodecEncode]: ...

    @property
    def origin(self) -> float: ...

    def notify_observers(self, frame: av.VideoFrame | None) -> None: ...

    def count_index(self, index: int) -> None: ...


def reads_in_thread(camera: Any) -> bool:
    """Whether ``camera`` can be read from the frame pump's thread."""
    return bool(getattr(camera, "reads_in_thread", False))


async def run_frame_pump(encoder: FrameEncoder, camera: ThreadReadableCamera) -> None:
    """Run the frame thread until the camera ends (returns) or the encode fails (raises);
    cancelled: the thread is stopped and joined (off the loop) before this returns."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    done: asyncio.Future[BaseException | None] = loop.create_future()

    def finished(error: BaseException | None) -> None:
        if not done.done():
            done.set_result(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            name_this_thread()
            _pump(encoder, camera, stop, loop)
        except BaseException as exc:  # handed to the loop, which raises it
            error = exc
        try:
            loop.call_soon_threadsafe(finished, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    thread = threading.Thread(target=run, name=f"video-{encoder.name}", daemon=True)
    thread.start()
    try:
        error = await asyncio.shield(done)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)
    if error is not None:
        raise error


def _pump(encoder: FrameEncoder, camera: ThreadReadableCamera, stop: threading.Event,
          loop: asyncio.AbstractEventLoop) -> None:
    nicer = NicerWhile.for_this_thread(ENCODER_NICE)
    if nicer is None:
        log.info("%s encoder: encodes in worker threads (this thread cannot be made "
                 "nicer for an encode and back)", encoder.name)
    while not stop.is_set():
        fps = camera.fps or 30
        due = encoder.budget.next_frame_at(fps) if encoder.active_codecs else None
        if due is not None and due > time.monotonic():
            if stop.wait(min(1.0, due - time.monotonic())):
                return
        try:
            captured = camera.read_sync(READ_TIMEOUT)
        except EOFError:
            log.info("%s encoder: camera stopped", encoder.name)
            return
        if captured is None:
            continue
        encoder.frames_in += 1
        encoder.notify_observers(captured.frame)
        encode_captured(encoder, captured, fps, loop,
                        nicer if nicer is not None and not nicer.failures else None)


def admitted_encodes(encoder: FrameEncoder, captured: CapturedFrame,
                     fps: int) -> list[CodecEncode]:
    """The encodes ``captured`` goes to: none when nobody takes video (counted as unused)
    or the audio-first budget skips it. Encodes nobody takes any more are closed."""
    encodes = encoder.codec_encodes
    encoder.count_index(captured.index)
    active = [enc for enc in encodes if enc.active]
    for enc in encodes:
        if not enc.active and enc.is_open:
            executor = enc.close()  # nobody takes it: free the encoder
            if executor is not None:
                executor.shutdown(wait=False)
    if not active:
        encoder.frames_unused += 1
        return []
    if not encoder.budget.admit(captured.captured_at, fps):
        return []  # the audio is late: fewer frames (counted by the budget)
    return active


def encode_captured(encoder: FrameEncoder, captured: CapturedFrame, fps: int,
                    loop: asyncio.AbstractEventLoop, nicer: NicerWhile | None = None) -> None:
    """Encode one frame with every codec in use: here under ``nicer`` when there is one
    codec and a ``nicer``, else in each codec's worker thread."""
    active = admitted_encodes(encoder, captured, fps)
    if not active:
        return
    scale = encoder.budget.step.scale
    frame = captured.frame
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    if nicer is not None and len(active) == 1:
        enc = active[0]
        with nicer:
            packets = enc.encode(frame, captured, encoder.origin, fps, scale, False)
        _hand_on(enc, packets, loop)
        return
    jobs: list[tuple[CodecEncode, concurrent.futures.Future[Any]]] = [
        (enc, enc.executor().submit(enc.encode, frame if i == 0 else copy_frame(frame),
                                    captured, encoder.origin, fps, scale, False))
        for i, enc in enumerate(active)]
    for enc, job in jobs:
        _hand_on(enc, job.result(), loop)


def _hand_on(enc: CodecEncode, packets: list[EncodedPacket],
             loop: asyncio.AbstractEventLoop) -> None:
    if packets:
        enc.fanout.to_sinks(packets)  # the room's RTP send, in this thread
    if packets and enc.fanout.has_subscriptions:
        loop.call_soon_threadsafe(enc.publish, packets)


def copy_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p frame with its own planes (for a second encode of the same capture)."""
    import av

    return av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")


def publish_done(jobs: list[tuple[CodecEncode, asyncio.Future[list[EncodedPacket]]]],
                 raise_errors: bool = False) -> None:
    """Publish (on the loop) what each finished encode of a frame read on the loop made."""
    error: BaseException | None = None
    for enc, job in jobs:
        if job.cancelled():
            continue
        exc = job.exception()
        if exc is not None:
            error = error or exc
            continue
        enc.publish(job.result())
    if error is not None and raise_errors:
        raise error

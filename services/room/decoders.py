"""The members' decoders: one thread per video stream, and stopped without a wait.

aiortc opens each received stream's decoder (PyAV's H.264 decoder or libvpx's VP8) with
FFmpeg's default thread count, 0: as many threads as the machine has cores, for every
stream. Each receiver already decodes in its own thread, and a 640x480 stream is a small
part of a core for one thread, so the extra threads buy nothing on the appliance and cost
their buffers and a malloc arena each. :func:`install` makes aiortc's receivers open
their decoders with :data:`DECODER_THREADS`.

aiortc's receiver also joins its decoder thread when it stops it: on an RTCP BYE from the
sender, when the connection drops, and when the receiver or the connection is closed.
All of that runs on the event loop, which then waits for the frame being decoded (a few
ms here, several times that on a Pi's core, for each stream), and the room's audio waits
with it. :func:`install` also makes that stop tell the thread to end and not wait: the
thread reads the None, tells the track it ended, and ends by itself.

The thread is then :func:`decoder_worker`, in place of aiortc's: a thread that is not
waited for may finish after its event loop has closed, and aiortc's hands its frames
over with ``run_coroutine_threadsafe``, which then fails (or leaves a coroutine never
awaited). This one hands each frame to the track's queue with a plain
``call_soon_threadsafe`` (no coroutine, future and task per frame either), and stops
handing over once the loop is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from typing import Any

log = logging.getLogger(__name__)

#: Threads of one received stream's video decoder (0: FFmpeg's default, one a core).
DECODER_THREADS = 1
_WRAPPED = "_edgeroom_decoder_threads"


def limit_threads(decoder: Any, threads: int | None = None) -> Any:
    """``decoder`` (an aiortc decoder) with its codec set to ``threads`` threads
    (:data:`DECODER_THREADS` when not given), if it wraps a PyAV codec context that is
    not open yet."""
    if threads is None:
        threads = DECODER_THREADS
    codec = getattr(decoder, "codec", None)
    if codec is not None and hasattr(codec, "thread_count") and not codec.is_open:
        codec.thread_count = threads
    return decoder


#: aiortc's own stop and decoder thread, once :func:`install` has replaced them.
REPLACED: dict[str, Any] = {}

_STOP = "_RTCRtpReceiver__stop_decoder"
_THREAD = "_RTCRtpReceiver__decoder_thread"
_QUEUE = "_RTCRtpReceiver__decoder_queue"


def end_decoder(receiver: Any) -> None:
    """aiortc's ``RTCRtpReceiver.__stop_decoder`` without its ``join()``: the decoder
    thread is sent the None that ends it, and forgotten."""
    if getattr(receiver, _THREAD, None) is not None:
        getattr(receiver, _QUEUE).put(None)
        setattr(receiver, _THREAD, None)


def decoder_worker(loop: asyncio.AbstractEventLoop, input_q: queue.Queue[Any],
                   output_q: asyncio.Queue[Any], decode_error: threading.Event) -> None:
    """A receiver's decoder thread (what aiortc's ``receive()`` starts, with the same
    arguments): decodes each ``(codec, encoded frame)`` from ``input_q`` and puts the
    frames in ``output_q`` (the track's), then None when it reads None. A frame that
    does not decode is logged and sets ``decode_error`` (the receiver then asks for a
    keyframe); the decoder keeps its state, so the frames after it decode once a
    reference comes."""
    import aiortc.rtcrtpreceiver as receiver
    import av

    def hand_over(item: Any) -> bool:
        try:
            loop.call_soon_threadsafe(output_q.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody takes frames any more
            return False
        return True

    name: str | None = None
    decoder: Any = None
    while True:
        task = input_q.get()
        if task is None:
            hand_over(None)  # the track ends
            return
        codec, encoded_frame = task
        if codec.name != name:
            decoder, name = receiver.get_decoder(codec), codec.name
        try:
            frames = decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            log.warning("%s receiver failed to decode a %s frame: %s",
                        codec.mimeType.split("/")[0], codec.name, exc)
            decode_error.set()
            continue
        for frame in frames:
            if not hand_over(frame):
                return


def install() -> None:
    """Make aiortc's receivers open their decoders through :func:`limit_threads`, run
    their decoder threads as :func:`decoder_worker` and stop them with
    :func:`end_decoder` (idempotent). The thread and its stop are left as aiortc has
    them if they are not the ones these replace."""
    import aiortc.rtcrtpreceiver as receiver

    original = receiver.get_decoder
    if not getattr(original, _WRAPPED, False):
        def get_decoder(codec: Any) -> Any:
            return limit_threads(original(codec))

        setattr(get_decoder, _WRAPPED, True)
        receiver.get_decoder = get_decoder
    cls = receiver.RTCRtpReceiver
    stop = getattr(cls, _STOP, None)
    if stop is None or getattr(stop, _WRAPPED, False):
        return
    if not _knows(stop, receiver.decoder_worker):
        log.warning("aiortc's receiver stops its decoder differently: "
                    "its stop waits for the frame being decoded")
        return

    @functools.wraps(stop)
    def stop_decoder(self: Any) -> None:
        end_decoder(self)

    setattr(stop_decoder, _WRAPPED, True)
    REPLACED.update(stop=stop, worker=receiver.decoder_worker)
    receiver.decoder_worker = decoder_worker
    setattr(cls, _STOP, stop_decoder)


def _knows(stop: Any, worker: Any) -> bool:
    """Whether aiortc's stop and decoder thread are the ones replaced here, by the names
    their code uses (no source is read): the stop puts in ``__decoder_queue`` and joins
    ``__decoder_thread``; the worker takes :func:`decoder_worker`'s arguments and decodes
    with ``get_decoder``. (``tests/room/test_aiortc_internals.py`` reads their source.)"""
    code = getattr(worker, "__code__", None)
    stop_names = set(getattr(getattr(stop, "__code__", None), "co_names", ()))
    return ({_THREAD, _QUEUE, "put", "join"} <= stop_names and code is not None
            and code.co_varnames[:code.co_argcount] == (
                "loop", "input_q", "output_q", "decode_error")
            and {"get_decoder", "decode"} <= set(code.co_names))
